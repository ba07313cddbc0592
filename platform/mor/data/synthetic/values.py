"""Value pools of the synthetic tools and the deterministic train/test split of values.

A free value (a city, a date, an amount, ...) belongs to the held-out side when a hash of (seed, value) falls under
the hold-out share, so the split of a value never depends on the order of generation and test values never occur
as training arguments. Enumerations and booleans are part of a tool's schema and are shared by both sides.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import random
from collections.abc import Callable
from typing import Any

__all__ = [
    "stable_hash",
    "ValueSplit",
    "NoValueError",
    "VALUE_KINDS",
    "CITIES",
    "FICTIONAL_PLACES",
    "CURRENCIES",
    "is_known_contact",
    "is_listed_symbol",
    "email_of",
]


def stable_hash(*parts: Any) -> int:
    """A process-independent 48-bit hash of the parts (Python's `hash` is salted per process)."""
    text = "\x1f".join(json.dumps(part, sort_keys=True, ensure_ascii=False) for part in parts)
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


CITIES: tuple[str, ...] = (
    "Paris",
    "Rome",
    "Berlin",
    "Madrid",
    "Lisbon",
    "Vienna",
    "Prague",
    "Warsaw",
    "Budapest",
    "Athens",
    "Dublin",
    "London",
    "Oslo",
    "Stockholm",
    "Helsinki",
    "Copenhagen",
    "Amsterdam",
    "Brussels",
    "Zurich",
    "Geneva",
    "Munich",
    "Hamburg",
    "Milan",
    "Naples",
    "Florence",
    "Venice",
    "Seville",
    "Valencia",
    "Porto",
    "Krakow",
    "Tokyo",
    "Osaka",
    "Kyoto",
    "Seoul",
    "Busan",
    "Beijing",
    "Shanghai",
    "Shenzhen",
    "Taipei",
    "Manila",
    "Bangkok",
    "Hanoi",
    "Jakarta",
    "Singapore",
    "Mumbai",
    "Delhi",
    "Chennai",
    "Kolkata",
    "Dhaka",
    "Karachi",
    "Lahore",
    "Tehran",
    "Baghdad",
    "Riyadh",
    "Dubai",
    "Doha",
    "Istanbul",
    "Ankara",
    "Cairo",
    "Casablanca",
    "Tunis",
    "Algiers",
    "Lagos",
    "Accra",
    "Nairobi",
    "Kampala",
    "Addis Ababa",
    "Johannesburg",
    "Cape Town",
    "Durban",
    "Toronto",
    "Montreal",
    "Vancouver",
    "Calgary",
    "Ottawa",
    "Chicago",
    "Boston",
    "Seattle",
    "Denver",
    "Austin",
    "Dallas",
    "Houston",
    "Miami",
    "Atlanta",
    "Phoenix",
    "Portland",
    "Detroit",
    "New York",
    "Los Angeles",
    "San Francisco",
    "San Diego",
    "Las Vegas",
    "Mexico City",
    "Guadalajara",
    "Monterrey",
    "Havana",
    "Bogota",
    "Lima",
    "Quito",
    "Santiago",
    "Buenos Aires",
    "Montevideo",
    "Sao Paulo",
    "Rio de Janeiro",
    "Brasilia",
    "Caracas",
    "Sydney",
    "Melbourne",
    "Brisbane",
    "Perth",
    "Adelaide",
    "Auckland",
    "Wellington",
    "Reykjavik",
    "Tallinn",
    "Riga",
    "Vilnius",
    "Minsk",
    "Kyiv",
    "Odesa",
    "Bucharest",
    "Sofia",
    "Belgrade",
    "Zagreb",
    "Ljubljana",
    "Sarajevo",
    "Tirana",
    "Skopje",
    "Valletta",
    "Nicosia",
    "Tbilisi",
    "Yerevan",
    "Baku",
    "Almaty",
    "Tashkent",
    "Kathmandu",
    "Colombo",
    "Hobart",
    "Darwin",
    "Anchorage",
    "Honolulu",
    "Edinburgh",
    "Glasgow",
    "Cardiff",
    "Belfast",
    "Marseille",
    "Lyon",
    "Nice",
    "Bordeaux",
    "Toulouse",
    "Antwerp",
    "Rotterdam",
    "Utrecht",
)

FICTIONAL_PLACES: tuple[str, ...] = (
    "Atlantis",
    "Eldorado",
    "Shangri-La",
    "Lemuria",
    "Avalon",
    "Xanadu",
    "Camelot",
    "Utopia",
    "Narnia",
    "Gondor",
    "Mordor",
    "Rivendell",
    "Lilliput",
    "Brobdingnag",
    "Erewhon",
    "Zenda",
    "Ruritania",
    "Wakanda",
    "Gotham",
    "Metropolis",
    "Arkham",
    "Hogsmeade",
    "Oz",
    "Neverland",
    "Wonderland",
    "Agrabah",
    "Arendelle",
    "Zootopia",
    "Bikini Bottom",
    "Springfield North",
    "Vulcan City",
    "Cloud Cuckoo",
    "Hyperborea",
    "Mu",
    "Thule",
    "Cibola",
    "Quivira",
    "Kitezh",
    "Lyonesse",
    "Ys",
)

CURRENCIES: tuple[str, ...] = (
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "CHF",
    "CAD",
    "AUD",
    "NZD",
    "CNY",
    "HKD",
    "SGD",
    "SEK",
    "NOK",
    "DKK",
    "PLN",
    "CZK",
    "HUF",
    "RON",
    "BGN",
    "TRY",
    "INR",
    "IDR",
    "MYR",
    "PHP",
    "THB",
    "KRW",
    "TWD",
    "VND",
    "ZAR",
    "EGP",
    "NGN",
    "KES",
    "MAD",
    "BRL",
    "MXN",
    "ARS",
    "CLP",
    "COP",
    "PEN",
    "ILS",
    "AED",
    "SAR",
    "QAR",
    "ISK",
)

_FIRST_NAMES = (
    "Alice",
    "Bruno",
    "Carla",
    "Daniel",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Keiko",
    "Liam",
    "Maya",
    "Nikolai",
    "Olivia",
    "Pablo",
    "Quinn",
    "Rosa",
    "Samir",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Aaron",
    "Bianca",
    "Chen",
    "Dalia",
    "Emil",
    "Fatima",
    "Gustav",
    "Hana",
    "Ivan",
    "Julia",
    "Kofi",
    "Lena",
    "Marco",
    "Nadia",
    "Oscar",
    "Priya",
    "Rafael",
    "Sofia",
    "Tomas",
    "Ursula",
    "Viktor",
    "Wanda",
    "Yara",
    "Zane",
    "Amir",
    "Beatriz",
    "Caleb",
    "Diana",
    "Erik",
    "Freya",
    "George",
    "Helga",
    "Isaac",
    "Jasmine",
)

_LAST_NAMES = (
    "Smith",
    "Garcia",
    "Muller",
    "Rossi",
    "Dubois",
    "Novak",
    "Kowalski",
    "Silva",
    "Tanaka",
    "Kim",
    "Nguyen",
    "Patel",
    "Khan",
    "Okafor",
    "Mensah",
    "Haddad",
    "Larsen",
    "Berg",
    "Costa",
    "Ferreira",
    "Jansen",
    "Peeters",
    "Horvat",
    "Popescu",
    "Ivanova",
    "Schmidt",
    "Moreau",
    "Romano",
    "Lopez",
    "Martin",
    "Wagner",
    "Weber",
    "Fischer",
    "Keller",
    "Bauer",
    "Lindqvist",
    "Nieminen",
    "Olsen",
    "Murphy",
    "Walsh",
    "Byrne",
    "Sato",
    "Suzuki",
    "Wang",
    "Li",
    "Zhang",
    "Chen",
    "Singh",
    "Das",
    "Rahman",
    "Ali",
    "Yilmaz",
    "Demir",
    "Papadopoulos",
)

_TITLE_FIRST = (
    "budget",
    "team",
    "project",
    "design",
    "quarterly",
    "weekly",
    "client",
    "board",
    "product",
    "sales",
    "marketing",
    "hiring",
    "security",
    "roadmap",
    "launch",
    "training",
    "research",
    "support",
    "finance",
    "strategy",
)
_TITLE_SECOND = (
    "review",
    "meeting",
    "sync",
    "kickoff",
    "planning",
    "lunch",
    "workshop",
    "demo",
    "retro",
    "interview",
    "call",
    "briefing",
    "offsite",
    "standup",
    "check-in",
    "presentation",
    "dinner",
    "audit",
    "update",
    "session",
)

_VERBS = ("call", "email", "visit", "pay", "buy", "book", "clean", "water", "pick up", "return", "renew", "print")
_OBJECTS = (
    "mom",
    "the dentist",
    "the bank",
    "the plants",
    "milk",
    "the car",
    "my passport",
    "the library books",
    "the tickets",
    "the kitchen",
    "the rent",
    "the report",
    "dad",
    "the garage",
    "the insurance",
    "bread",
)

_WORDS = (
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "good",
    "morning",
    "see",
    "you",
    "tomorrow",
    "thank",
    "very",
    "much",
    "where",
    "is",
    "station",
    "train",
    "leaves",
    "at",
    "noon",
    "please",
    "open",
    "window",
    "coffee",
    "tastes",
    "great",
    "today",
    "my",
    "friend",
    "lives",
    "near",
    "river",
    "book",
    "was",
    "long",
    "but",
    "worth",
    "it",
    "we",
    "need",
    "more",
    "time",
    "sun",
    "rises",
    "early",
    "summer",
    "rain",
    "falls",
    "softly",
)

_TOPICS = (
    "technology",
    "sports",
    "politics",
    "science",
    "health",
    "finance",
    "climate",
    "space",
    "music",
    "movies",
    "education",
    "travel",
    "food",
    "fashion",
    "gaming",
    "energy",
    "art",
    "history",
    "economy",
    "medicine",
    "robotics",
    "startups",
    "football",
    "tennis",
    "cycling",
    "elections",
    "astronomy",
    "oceans",
    "wildlife",
    "architecture",
    "cars",
    "aviation",
    "cryptocurrency",
    "agriculture",
    "books",
    "theatre",
    "photography",
    "chess",
    "basketball",
    "olympics",
)

_DATE_ORIGIN = _dt.date(2024, 1, 1)
_DATE_SPAN = 3 * 366


class NoValueError(LookupError):
    """No value of a kind exists on the requested side of the split."""


class ValueSplit:
    """Assigns every free value to `train` or `test` by a hash of (seed, value)."""

    def __init__(self, seed: int, holdout: float) -> None:
        if not 0.0 < holdout < 1.0:
            raise ValueError(f"value holdout: got {holdout}, must be in (0, 1); e.g. 0.25")
        self.seed = seed
        self.holdout = holdout

    def side(self, value: Any) -> str:
        """`test` or `train`: the side this value belongs to."""
        bucket = stable_hash("value-split", self.seed, value) % 100_000
        return "test" if bucket < self.holdout * 100_000 else "train"

    def sample(self, kind: str, split: str, rng: random.Random) -> Any:
        """Draw a value of `kind` from the `split` side (rejection first, then exhaustive for small pools)."""
        try:
            draw, pool = VALUE_KINDS[kind]
        except KeyError:
            raise KeyError(f"value kind {kind!r} unknown; known kinds: {sorted(VALUE_KINDS)}") from None
        for _ in range(64):
            value = draw(rng)
            if self.side(value) == split:
                return value
        if pool is not None:
            candidates = [value for value in pool() if self.side(value) == split]
            if candidates:
                return rng.choice(candidates)
        raise NoValueError(f"no {kind} value on the {split} side of the split (seed {self.seed})")


def _pick(items: tuple[str, ...]) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(items)


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"


def is_known_contact(name: str) -> bool:
    """Whether the synthetic address book holds this name (about five in six generated names)."""
    return name != "" and stable_hash("contact", name) % 6 != 0


def _contact(rng: random.Random) -> str:
    while True:
        name = _person(rng)
        if is_known_contact(name):
            return name


def _unknown_contact(rng: random.Random) -> str:
    while True:
        name = _person(rng)
        if not is_known_contact(name):
            return name


def is_listed_symbol(symbol: str) -> bool:
    """Whether the synthetic stock exchange lists this ticker (about five in six generated tickers)."""
    return symbol.isalpha() and symbol.isupper() and stable_hash("symbol", symbol) % 6 != 0


def email_of(name: str) -> str:
    """The synthetic address book's e-mail address of a contact."""
    return name.lower().replace(" ", ".") + "@example.com"


def _email(rng: random.Random) -> str:
    return email_of(_person(rng))


def _ticker(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPRSTUVWXYZ") for _ in range(rng.choice((3, 4))))


def _symbol(rng: random.Random) -> str:
    while True:
        symbol = _ticker(rng)
        if is_listed_symbol(symbol):
            return symbol


def _unlisted_symbol(rng: random.Random) -> str:
    while True:
        symbol = _ticker(rng)
        if not is_listed_symbol(symbol):
            return symbol


def _bad_currency(rng: random.Random) -> str:
    while True:
        code = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3))
        if code not in CURRENCIES:
            return code


def _date(rng: random.Random) -> str:
    return (_DATE_ORIGIN + _dt.timedelta(days=rng.randrange(_DATE_SPAN))).isoformat()


def _time(rng: random.Random) -> str:
    return f"{rng.randrange(7, 22):02d}:{rng.choice((0, 15, 30, 45)):02d}"


def _title(rng: random.Random) -> str:
    return f"{rng.choice(_TITLE_FIRST)} {rng.choice(_TITLE_SECOND)}"


def _message(rng: random.Random) -> str:
    return f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(3, 7)))


def _amount(rng: random.Random) -> int | float:
    whole = rng.randrange(5, 5000)
    return whole if rng.random() < 0.7 else whole + rng.choice((0.5, 0.25, 0.75))


def _operand(rng: random.Random) -> int | float:
    whole = rng.randrange(2, 1000)
    return whole if rng.random() < 0.8 else whole + rng.choice((0.5, 0.25))


def _ints(low: int, high: int) -> tuple[Callable[[random.Random], int], Callable[[], list[int]]]:
    return (lambda rng: rng.randrange(low, high + 1)), (lambda: list(range(low, high + 1)))


VALUE_KINDS: dict[str, tuple[Callable[[random.Random], Any], Callable[[], list[Any]] | None]] = {
    "city": (_pick(CITIES), lambda: list(CITIES)),
    "fictional_place": (_pick(FICTIONAL_PLACES), lambda: list(FICTIONAL_PLACES)),
    "currency": (_pick(CURRENCIES), lambda: list(CURRENCIES)),
    "bad_currency": (_bad_currency, None),
    "contact": (_contact, None),
    "unknown_contact": (_unknown_contact, None),
    "person": (_person, None),
    "symbol": (_symbol, None),
    "unlisted_symbol": (_unlisted_symbol, None),
    "date": (_date, None),
    "time": (_time, None),
    "title": (_title, None),
    "message": (_message, None),
    "text": (_text, None),
    "topic": (_pick(_TOPICS), lambda: list(_TOPICS)),
    "email": (_email, None),
    "flight_id": (lambda rng: f"FL{rng.randrange(1000, 10000)}", None),
    "restaurant_id": (lambda rng: f"R{rng.randrange(1000, 10000)}", None),
    "product_id": (lambda rng: f"P{rng.randrange(10000, 100000)}", None),
    "tracking_number": (lambda rng: f"TRK{rng.randrange(100000, 1000000)}", None),
    "amount": (_amount, None),
    "operand": (_operand, None),
    "percent": _ints(1, 99),
    "days": _ints(1, 14),
    "nights": _ints(1, 21),
    "people": _ints(1, 12),
    "stars": _ints(1, 5),
    "limit": _ints(1, 10),
    "minutes": (lambda rng: rng.choice(range(15, 241, 15)), lambda: list(range(15, 241, 15))),
    "prime_candidate": _ints(2, 9999),
}
