"""What a copy of the database *with* the key file still reveals once tips are sealed.

Sealing keeps every field envelope shut, but two stored values are keyed hashes the server
must be able to compute for new input, so whoever holds the key file can compute them for
guesses: a reporter's phone number (``phone_hash``, for SMS threading and opt-outs) falls to
enumerating the numbers of the school's area, and a tip's surge signature (a keyed b-bit
MinHash, issue 14) still ranks the word stems of its text at the top of a word list, though
no single slot proves a word any more. These tests show the attacks so that docs/crypto.md
and docs/threat-model.md say it; they fail once a change makes either value useless to the
key file (then update those documents).
"""

from __future__ import annotations

from tipline.crypto import Vault
from tipline.surge.services import KEY_PURPOSE
from tipline.surge.signature import BITS, SLOTS, features, signature
from tipline.telephony.sms import PHONE_PURPOSE

TIP = ("There is a kid named Marcus in 10th grade who said he is bringing his dad's gun to "
       "school on Friday to shoot the people who jumped him behind the gym")
# Decoys: a word list the attacker would use holds far more; each costs one hash per slot.
DECOYS = ("apple bus cafeteria class dance drugs english fight friday game hallway homework "
          "knife library locker lunch math monday pills principal recess science soccer "
          "teacher thursday vape weekend wednesday tuesday bathroom parking threat")


def test_a_phone_hash_is_found_by_enumerating_an_exchange(vault: Vault) -> None:
    stored = vault.lookup_hash(PHONE_PURPOSE, "+13145550123")
    found = [n for n in (f"+1314555{i:04d}" for i in range(10_000))
             if vault.lookup_hash(PHONE_PURPOSE, n) == stored]
    assert found == ["+13145550123"]


def test_the_exact_slot_match_no_longer_singles_out_the_stems_of_a_tip(vault: Vault) -> None:
    """Before, a slot held a full 32-bit minimum: a word whose hash equalled it was in the
    tip, for certain. Now a slot keeps one bit, which half of all words share: every word of
    a list "matches" in hundreds of slots, decoys as much as the tip's words."""
    key = vault.derive_secret(KEY_PURPOSE, 64)
    stored = _bits(signature(TIP, key).minhash)
    agree = {}
    for word in set((TIP + " " + DECOYS).split()):
        feats = features(word)
        if len(feats) == 1:
            mine = _bits(signature(word, key).minhash)
            agree[next(iter(feats))] = sum(a == b for a, b in zip(mine, stored, strict=True))
    flagged = {stem for stem, n in agree.items() if n > 0}
    assert flagged == set(agree)  # the old test's rule now recovers the whole list
    assert flagged - features(TIP)  # decoys included: the exact match tells nothing


def test_a_word_list_ranked_against_a_signature_still_finds_most_stems(vault: Vault) -> None:
    """The best attack on a b-bit signature: score each word by its bits in the slots where
    its own hash is small (there it is probably the minimum, if it is in the tip). Against
    a list of over 2,000 stems it still puts most of the tip's stems at the top: b-bit
    minwise hashing does not stop the key file; only erasing signatures after the grouping
    window (``surge.services.forget_signatures``) bounds what a copy gives back. Measured
    in docs/surge.md, "What the key file gives back"; this test fails once a change makes
    the attack useless (then update docs/crypto.md and docs/threat-model.md)."""
    from tests.surge.attack import Hashes, recovered, word_list

    key = vault.derive_secret(KEY_PURPOSE, 64)
    stems = word_list(2000)
    assert len(stems) >= 2000 and features(TIP) <= set(stems)
    n, top10, top50 = recovered(TIP, key, stems, Hashes.of(stems, key, SLOTS), BITS)
    assert top10 >= 7 and top50 >= n - 1  # of 11 stems (measured: 10 and 11)


def _bits(minhash: bytes) -> list[int]:
    x = int.from_bytes(minhash, "big")
    return [(x >> (SLOTS - 1 - i)) & 1 for i in range(SLOTS)]
