"""Operations: metrics, backups and restores, release facts (for the district's IT person)."""
