"""District administration (schools, contacts, users, routing policy), audit viewer, statistics."""
