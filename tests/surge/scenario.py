"""The surge scenario shared by tests/surge/test_surge.py and ``python -m bench routing
--surge-groups``: 500 tips about one threat (paraphrases in English and Spanish, some with new
facts, a few more severe) and 50 unrelated tips at the same school within five minutes."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import make_tip
from tipline.crypto import Vault
from tipline.jobs import JobQueue
from tipline.routing.models import Dispatch, DispatchStatus, JobStatus, RoutingJob
from tipline.routing.services import DirectoryPlanner, route_job
from tipline.surge import services as surge
from tipline.surge.models import TipSignature
from tipline.tips.models import Category, Severity

SCHOOL = "slps-roosevelt"
OPENERS = ["", "I saw that ", "people are saying ", "my friend showed me that ",
           "there's a rumor that ", "please help, ", "idk if this is real but ",
           "everyone in my class says ", "just so you know ", "on snapchat it says "]
CORES = [
    "someone is going to shoot up Roosevelt on Friday",
    "a kid posted on snapchat he will shoot up the school friday",
    "there will be a shooting at Roosevelt this friday",
    "somebody said roosevelt is getting shot up friday",
    "a snapchat post says there's going to be a school shooting at roosevelt friday",
    "someone threatened to shoot up roosevelt high on friday",
    "the snap about shooting up roosevelt friday is going around",
    "a shooting threat for roosevelt on friday was posted on snapchat",
]
CORES_ES = [
    "alguien va a disparar en Roosevelt el viernes",
    "hay un post en snapchat que dice que va a haber un tiroteo en roosevelt el viernes",
    "dicen que el viernes van a disparar en la escuela roosevelt",
]
SUFFIXES = ["", ". please do something", ". everyone is scared", ". I don't want to go",
            ". it's all over snapchat", ". is this real?", ". my mom told me to report it",
            " tengo miedo", ". lots of kids are staying home"]
FACTS = [" the account is called rv_reaper", " he said it would be at lunch in the cafeteria",
         " I think it is Marcus in 10th grade", " the post has a picture of the side door",
         " he said he will come in through the gym at 11"]
UNRELATED = [
    "Kids are vaping in the second floor bathroom every period",
    "A girl in 8th grade is being bullied on a fake instagram account",
    "My friend is cutting herself and said she wants to die",
    "A senior sells weed out of his car in the parking lot",
    "There will be a fight behind the gym after school today",
    "My classmate has bruises and says her dad hits her",
    "Someone stole a teacher's laptop from room 112",
    "A substitute teacher yelled at a student and pushed his desk",
    "Boys in the locker room are taking pictures of people changing",
    "A student is drinking alcohol from a water bottle in class",
    "My friend has not eaten in days and her family has no food",
    "A kid on bus 9 keeps taking other kids' lunch money",
    "Someone spray painted slurs on the wall by the library",
    "A girl is being pressured to send nudes by an older boy",
    "The stairwell door on the east side is always propped open",
    "My cousin was kicked out of his house and is sleeping in a car",
    "A teacher keeps texting a student late at night",
    "Students are gambling with dice in the cafeteria",
    "A boy keeps touching girls in the hallway without asking",
    "My friend said her boyfriend chokes her when he is angry",
    "Somebody is selling pills called percs in the band room",
    "The crossing guard has not been there all week and kids run across the road",
    "A student brought a bb gun to show friends at the bus stop yesterday",
    "A group of seniors is hazing freshmen on the football team",
    "My friend's stepdad will not let her eat until she finishes chores",
    "Un niño de sexto grado llora todos los días porque le pegan en el recreo",
    "Mi hermano está tomando pastillas que le vendió un chico de la escuela",
    "Una maestra se burla de los estudiantes que no hablan inglés",
    "Hay un hombre que espera a las niñas afuera de la escuela en un carro blanco",
    "Mi amiga dice que se va a escapar de su casa esta noche",
    "A student is sharing answers to the state test in a group chat",
    "Someone keeps pulling the fire alarm during lunch",
    "A kid has been missing school for two weeks and nobody knows why",
    "The science lab has chemicals left open on the counter",
    "An adult is messaging students on discord pretending to be a student",
    "A student is being called slurs every day in spanish class",
    "My friend got drunk at a party and someone took a video of her",
    "There is a dog loose on the playground every morning",
    "A boy says he is going to run away because his parents fight",
    "A student was vaping in the nurse's office and passed out",
    "People are making an AI fake video of a teacher",
    "A kid in art class is eating chalk and glue and seems sick",
    "A student keeps taking pictures of the answer key in math",
    "Somebody broke into the concession stand last night",
    "A girl in 7th grade is being forced to work at her uncle's store at night",
    "A student said his brother is in a gang and wants him to join",
    "Two teachers were arguing loudly in front of students and one threw a chair",
    "The heater in room 204 smells like gas",
    "A student is selling homework answers for money",
    "My friend says she is pregnant and her parents do not know",
]


@dataclass
class SurgeTip:
    text: str
    severity: Severity
    kind: str  # threat | fact | higher | unrelated
    tip_id: int = 0
    alerted: bool = False
    folded: bool = False


@dataclass
class SurgeResult:
    tips: list[SurgeTip] = field(default_factory=list)
    group_ids: dict[int, int | None] = field(default_factory=dict)
    alert_chains: int = 0  # routing jobs that wrote dispatches
    alerts: int = 0  # dispatches written by routing (one per contact alerted)
    notices: int = 0  # "N more tips" notice dispatches
    not_routed: int = 0


def tips(rng: random.Random, threat: int = 500, unrelated: int = 50) -> list[SurgeTip]:
    """The tips in arrival order: the threat's first, then everything shuffled."""
    out = [SurgeTip(f"{CORES[0][0].upper()}{CORES[0][1:]} on snapchat", Severity.HIGH, "threat")]
    for _ in range(threat - 1):
        spanish = rng.random() < 0.15
        core = rng.choice(CORES_ES if spanish else CORES)
        text = rng.choice(OPENERS if not spanish else ["", "ayuda, ", "oigan, "]) + core
        kind, severity = "threat", Severity.HIGH
        roll = rng.random()
        if roll < 0.06:
            text += "." + rng.choice(FACTS)
            kind = "fact"
        elif roll < 0.09:
            kind, severity = "higher", Severity.LIFE_SAFETY
        out.append(SurgeTip(text + rng.choice(SUFFIXES), severity, kind))
    others = [SurgeTip(t, Severity.MEDIUM, "unrelated") for t in UNRELATED[:unrelated]]
    rest = out[1:] + others
    rng.shuffle(rest)
    return [out[0], *rest]


def run(session: Session, vault: Vault, queue: JobQueue, items: list[SurgeTip],
        start: datetime, span: timedelta = timedelta(minutes=5)) -> SurgeResult:
    """Take every tip in and route it at its simulated arrival time, then the notices of a
    scheduler running every minute over the span and up to one interval after it."""
    result = SurgeResult(items)
    planner = DirectoryPlanner()
    step = span / max(1, len(items))
    for i, item in enumerate(items):
        category = Category.THREAT if item.kind != "unrelated" else Category.OTHER
        r = make_tip(session, vault, queue, body=item.text, school_code=SCHOOL,
                     severity=item.severity, category=category)
        session.commit()
        item.tip_id = r.tip_id
        now = start + step * i
        routed = route_job(session, r.job_id, planner, queue, now)
        item.alerted = routed.dispatches > 0
        if routed.dispatches:
            result.alert_chains += 1
            result.alerts += routed.dispatches
        if i % max(1, len(items) // 5) == 0:
            result.notices += _notices(session, queue, now)
    tick = start
    while tick <= start + span + surge.NOTICE_EVERY:
        result.notices += _notices(session, queue, tick)
        tick += timedelta(minutes=1)
    for item in items:
        sig = session.get(TipSignature, item.tip_id)
        result.group_ids[item.tip_id] = sig.group_id if sig else None
        item.folded = bool(sig and sig.folded)
    result.not_routed = session.execute(select(func.count(RoutingJob.id)).where(
        RoutingJob.status != JobStatus.DONE.value)).scalar_one()
    return result


def _notices(session: Session, queue: JobQueue, now: datetime) -> int:
    before = _notice_count(session)
    surge.notify_groups(session, queue, now)
    return _notice_count(session) - before


def _notice_count(session: Session) -> int:
    return int(session.execute(select(func.count(Dispatch.id)).where(
        Dispatch.status == DispatchStatus.NOTICE.value,
        Dispatch.rule.like(surge.NOTICE_RULE + ":%"))).scalar_one())
