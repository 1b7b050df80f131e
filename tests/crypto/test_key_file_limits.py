"""What a copy of the database *with* the key file still reveals once tips are sealed.

Sealing keeps every field envelope shut, but two stored values are keyed hashes the server
must be able to compute for new input, so whoever holds the key file can compute them for
guesses: a reporter's phone number (``phone_hash``, for SMS threading and opt-outs) falls to
enumerating the numbers of the school's area, and a tip's surge signature (a keyed MinHash,
issue 14) gives back the word stems of its text against a word list. These tests show the
attack so that docs/crypto.md and docs/threat-model.md say it; they fail once a change makes
either value useless to the key file (then update those documents).
"""

from __future__ import annotations

from tipline.crypto import Vault
from tipline.surge.services import KEY_PURPOSE
from tipline.surge.signature import SLOTS, features, signature
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


def test_a_surge_signature_gives_back_the_word_stems_of_the_tip(vault: Vault) -> None:
    """The signature of a one-word text is that word's own hash values: a word of the tip
    shows up as the stored minimum of some slot."""
    key = vault.derive_secret(KEY_PURPOSE, 64)
    stored = _slots(signature(TIP, key).minhash)
    recovered = set()
    for word in set((TIP + " " + DECOYS).split()):
        feats = features(word)
        if len(feats) == 1 and any(
                mine == theirs for mine, theirs in zip(_slots(signature(word, key).minhash),
                                                      stored, strict=True)):
            recovered |= feats
    assert recovered == features(TIP)  # every stem, the name and the weapon among them
    assert {"marcu", "~gun"} <= recovered


def _slots(minhash: bytes) -> list[bytes]:
    return [minhash[i * 4:i * 4 + 4] for i in range(SLOTS)]
