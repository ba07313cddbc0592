"""The synthetic tool catalog: schemas, deterministic implementations and how users ask for each tool.

Every implementation is a pure function of its arguments, so the same call always gives the same observation and
an agent evaluated against these tools meets exactly the observations of the reference trajectories. Bad
arguments give an observation with an `error` (and, where a retry can succeed, a `suggestion` of new arguments).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mor.data.schema import Tool
from mor.data.synthetic.values import (
    CITIES,
    CURRENCIES,
    email_of,
    is_known_contact,
    is_listed_symbol,
    stable_hash,
)

__all__ = ["Param", "Ask", "ToolDef", "ToolError", "CATALOG", "catalog_tools", "tool_def"]

_CITY_SET = frozenset(CITIES)
_CONDITIONS = ("sunny", "cloudy", "rainy", "windy", "foggy", "snowy", "stormy", "clear")
_CUISINES = ("italian", "thai", "mexican", "indian", "japanese", "french")
_LANGUAGES = {"french": "fr", "spanish": "es", "german": "de", "italian": "it", "portuguese": "pt"}
_UNIT_FACTORS = {
    ("km", "miles"): 0.621371,
    ("miles", "km"): 1.609344,
    ("kg", "lb"): 2.204623,
    ("lb", "kg"): 0.453592,
    ("liters", "gallons"): 0.264172,
    ("gallons", "liters"): 3.785412,
}
_UNITS = ("km", "miles", "kg", "lb", "liters", "gallons")
_HOTELS = ("Aurora", "Central", "Plaza", "Harbor", "Royal", "Garden", "Summit", "Riverside", "Lotus", "Orchid")
_RESTAURANTS = ("Golden Spoon", "Blue Door", "Casa Verde", "Little Lantern", "Olive Tree", "Red Lotus", "Saffron")
_PACKAGE_STATES = ("in transit", "out for delivery", "delivered", "held at customs")
_HEADLINES = (
    "new report released",
    "experts meet to discuss the future",
    "record numbers this year",
    "a surprising study",
    "big changes announced",
)


class ToolError(Exception):
    """A tool refused its arguments; `suggestion` holds argument changes that make a retry succeed, if any."""

    def __init__(self, message: str, suggestion: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = dict(suggestion or {})


@dataclass(frozen=True)
class Param:
    """One argument of a synthetic tool; `kind` names the value pool free values are drawn from."""

    name: str
    type: str
    description: str
    kind: str | None = None
    enum: tuple[str, ...] | None = None
    required: bool = True

    @property
    def is_free(self) -> bool:
        """Whether values come from a pool (and are split train/test) rather than from the schema."""
        return self.enum is None and self.type != "boolean"

    def schema(self) -> dict[str, Any]:
        """The JSON schema of this argument."""
        out: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        return out


@dataclass(frozen=True)
class Ask:
    """A user-query template: `{param}` placeholders are filled with sampled values, `fixed` are implied by the text."""

    text: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def placeholders(self) -> list[str]:
        """Argument names the template mentions, in order."""
        return re.findall(r"\{(\w+)\}", self.text)


@dataclass(frozen=True)
class ToolDef:
    """A synthetic tool: schema, implementation, user phrasings, the reasoner's intent and the answer template."""

    name: str
    domain: str
    description: str
    params: tuple[Param, ...]
    asks: tuple[Ask, ...]
    intent: str
    answer: str
    answer_keys: tuple[str, ...]
    run: Callable[[dict[str, Any]], dict[str, Any]]
    give_up_kinds: Mapping[str, str] = field(default_factory=dict)

    def tool(self) -> Tool:
        """The OpenAI-style function this tool is offered as."""
        return Tool(
            name=self.name,
            description=self.description,
            parameters={
                "type": "object",
                "properties": {p.name: p.schema() for p in self.params},
                "required": [p.name for p in self.params if p.required],
                "additionalProperties": False,
            },
        )

    def param(self, name: str) -> Param:
        """The argument of that name."""
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(f"tool {self.name!r} has no argument {name!r}; arguments: {[p.name for p in self.params]}")


def _num(value: float) -> int | float:
    rounded = round(value, 2)
    return int(rounded) if float(rounded).is_integer() else rounded


def _city(value: str, field_name: str = "city") -> str:
    if value not in _CITY_SET:
        raise ToolError(f"unknown {field_name} '{value}'")
    return value


def _date(value: str) -> _dt.date:
    try:
        return _dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ToolError(f"date '{value}' is not a date in YYYY-MM-DD form") from None


def _currency(value: str) -> str:
    if value not in CURRENCIES:
        raise ToolError(f"unknown currency code '{value}'")
    return value


def _usd_per_unit(code: str) -> float:
    return 1.0 if code == "USD" else (stable_hash("rate", code) % 19000 + 100) / 10000


def _rate(base: str, target: str) -> float:
    return round(_usd_per_unit(_currency(base)) / _usd_per_unit(_currency(target)), 4)


def _weather(a: dict[str, Any]) -> dict[str, Any]:
    city = _city(a["city"])
    unit = a.get("unit", "celsius")
    celsius = stable_hash("weather", city) % 36 - 5
    temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    condition = _CONDITIONS[stable_hash("condition", city) % len(_CONDITIONS)]
    return {"city": city, "temperature": temperature, "unit": unit, "condition": condition}


def _forecast(a: dict[str, Any]) -> dict[str, Any]:
    city = _city(a["city"])
    days = int(a["days"])
    if not 1 <= days <= 14:
        raise ToolError(f"days must be between 1 and 14, got {days}")
    low = stable_hash("low", city, days) % 20 - 5
    high = low + stable_hash("high", city, days) % 12 + 1
    condition = _CONDITIONS[stable_hash("forecast", city, days) % len(_CONDITIONS)]
    return {"city": city, "days": days, "high": high, "low": low, "condition": condition}


def _air_quality(a: dict[str, Any]) -> dict[str, Any]:
    city = _city(a["city"])
    aqi = stable_hash("aqi", city) % 300 + 1
    level = "good" if aqi <= 50 else "moderate" if aqi <= 100 else "unhealthy" if aqi <= 200 else "hazardous"
    return {"city": city, "aqi": aqi, "level": level}


def _convert_currency(a: dict[str, Any]) -> dict[str, Any]:
    rate = _rate(a["from_currency"], a["to_currency"])
    return {
        "amount": a["amount"],
        "from_currency": a["from_currency"],
        "to_currency": a["to_currency"],
        "result": _num(a["amount"] * rate),
    }


def _exchange_rate(a: dict[str, Any]) -> dict[str, Any]:
    return {"base": a["base"], "target": a["target"], "rate": _rate(a["base"], a["target"])}


def _stock_price(a: dict[str, Any]) -> dict[str, Any]:
    symbol = a["symbol"]
    if not is_listed_symbol(symbol):
        raise ToolError(f"unknown stock symbol '{symbol}'")
    return {"symbol": symbol, "price": (stable_hash("price", symbol) % 90000 + 100) / 100}


def _create_event(a: dict[str, Any]) -> dict[str, Any]:
    _date(a["date"])
    time = a.get("time", "09:00")
    event_id = f"EV{stable_hash('event', a['title'], a['date'], time) % 90000 + 10000}"
    return {"event_id": event_id, "title": a["title"], "date": a["date"], "time": time}


def _day_of_week(a: dict[str, Any]) -> dict[str, Any]:
    return {"date": a["date"], "day": _date(a["date"]).strftime("%A")}


def _local_time(a: dict[str, Any]) -> dict[str, Any]:
    city = _city(a["city"])
    h = stable_hash("time", city)
    return {"city": city, "time": f"{h % 24:02d}:{h // 24 % 60:02d}"}


def _reminder(a: dict[str, Any]) -> dict[str, Any]:
    _date(a["date"])
    reminder_id = f"RM{stable_hash('reminder', a['message'], a['date'], a['time']) % 90000 + 10000}"
    return {"reminder_id": reminder_id, "date": a["date"], "time": a["time"]}


def _add(a: dict[str, Any]) -> dict[str, Any]:
    return {"result": _num(a["a"] + a["b"])}


def _multiply(a: dict[str, Any]) -> dict[str, Any]:
    return {"result": _num(a["a"] * a["b"])}


def _percentage(a: dict[str, Any]) -> dict[str, Any]:
    return {"result": _num(a["value"] * a["percent"] / 100)}


def _is_prime(a: dict[str, Any]) -> dict[str, Any]:
    n = int(a["number"])
    prime = n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))
    return {"number": n, "verdict": "prime" if prime else "composite"}


def _search_flights(a: dict[str, Any]) -> dict[str, Any]:
    origin, destination = _city(a["origin"], "origin"), _city(a["destination"], "destination")
    if origin == destination:
        raise ToolError(f"origin and destination are both '{origin}'")
    _date(a["date"])
    cabin = a.get("cabin", "economy")
    nonstop = bool(a.get("nonstop", False))
    key = (origin, destination, a["date"])
    if cabin != "economy" and stable_hash("sold-out", *key, cabin) % 3 == 0:
        raise ToolError(f"no {cabin} seats left on {a['date']}", suggestion={"cabin": "economy"})
    base = stable_hash("fare", *key) % 700 + 80
    price = base * {"economy": 1, "business": 3, "first": 5}[cabin] + (60 if nonstop else 0)
    return {
        "flight_id": f"FL{stable_hash('flight', *key) % 9000 + 1000}",
        "price": price,
        "cabin": cabin,
        "stops": 0 if nonstop else stable_hash("stops", *key) % 2,
    }


def _book_flight(a: dict[str, Any]) -> dict[str, Any]:
    if not re.fullmatch(r"FL\d{4}", str(a["flight_id"])):
        raise ToolError(f"unknown flight id '{a['flight_id']}'")
    booking = f"BK{stable_hash('booking', a['flight_id'], a['passenger']) % 90000 + 10000}"
    return {"booking_id": booking, "flight_id": a["flight_id"], "passenger": a["passenger"]}


def _find_hotels(a: dict[str, Any]) -> dict[str, Any]:
    city = _city(a["city"])
    nights = int(a["nights"])
    stars = int(a.get("stars", 3))
    if not 1 <= stars <= 5:
        raise ToolError(f"stars must be between 1 and 5, got {stars}")
    hotel = f"Hotel {_HOTELS[stable_hash('hotel', city, stars) % len(_HOTELS)]}"
    nightly = (stable_hash("night", city) % 120 + 40) * stars
    return {"hotel": hotel, "stars": stars, "total_price": nightly * nights}


def _distance(a: dict[str, Any]) -> dict[str, Any]:
    origin, destination = _city(a["origin"], "origin"), _city(a["destination"], "destination")
    unit = a.get("unit", "km")
    km = 0 if origin == destination else stable_hash("km", *sorted((origin, destination))) % 15000 + 30
    return {"distance": km if unit == "km" else round(km * 0.621371), "unit": unit}


def _find_restaurants(a: dict[str, Any]) -> dict[str, Any]:
    city, cuisine = _city(a["city"]), a["cuisine"]
    if cuisine not in _CUISINES:
        raise ToolError(f"unknown cuisine '{cuisine}'")
    if stable_hash("no-cuisine", city, cuisine) % 4 == 0:
        start = stable_hash("alternative", city, cuisine)
        for step in range(len(_CUISINES)):
            other = _CUISINES[(start + step) % len(_CUISINES)]
            if other != cuisine and stable_hash("no-cuisine", city, other) % 4 != 0:
                raise ToolError(f"no {cuisine} restaurants in {city}", suggestion={"cuisine": other})
        raise ToolError(f"no restaurants in {city}")
    h = stable_hash("restaurant", city, cuisine)
    return {
        "restaurant_id": f"R{h % 9000 + 1000}",
        "name": _RESTAURANTS[h % len(_RESTAURANTS)],
        "rating": round(3 + (h % 20) / 10, 1),
    }


def _book_table(a: dict[str, Any]) -> dict[str, Any]:
    if not re.fullmatch(r"R\d{4}", str(a["restaurant_id"])):
        raise ToolError(f"unknown restaurant id '{a['restaurant_id']}'")
    _date(a["date"])
    reservation = f"RS{stable_hash('table', a['restaurant_id'], a['date'], a['people']) % 90000 + 10000}"
    return {"reservation_id": reservation, "people": a["people"], "date": a["date"]}


def _lookup_contact(a: dict[str, Any]) -> dict[str, Any]:
    name = a["name"]
    if not is_known_contact(name):
        raise ToolError(f"no contact named '{name}'")
    h = stable_hash("phone", name)
    return {"name": name, "email": email_of(name), "phone": f"+1-555-{h % 9000 + 1000}"}


def _send_email(a: dict[str, Any]) -> dict[str, Any]:
    if "@" not in a["to"]:
        raise ToolError(f"'{a['to']}' is not an email address")
    return {"status": "sent", "message_id": f"MSG{stable_hash('mail', a['to'], a['subject']) % 90000 + 10000}"}


def _translate(a: dict[str, Any]) -> dict[str, Any]:
    code = _LANGUAGES[a["target_language"]]
    return {"translation": f"[{code}] {a['text']}"}


def _count_words(a: dict[str, Any]) -> dict[str, Any]:
    return {"words": len(str(a["text"]).split())}


def _product_price(a: dict[str, Any]) -> dict[str, Any]:
    return {"product_id": a["product_id"], "price": (stable_hash("product", a["product_id"]) % 50000 + 99) / 100}


def _track_package(a: dict[str, Any]) -> dict[str, Any]:
    h = stable_hash("package", a["tracking_number"])
    return {"status": _PACKAGE_STATES[h % len(_PACKAGE_STATES)], "location": CITIES[h % len(CITIES)]}


def _news(a: dict[str, Any]) -> dict[str, Any]:
    limit = int(a.get("limit", 5))
    headline = f"{a['topic']}: {_HEADLINES[stable_hash('news', a['topic']) % len(_HEADLINES)]}"
    return {"topic": a["topic"], "count": limit, "headline": headline}


def _convert_units(a: dict[str, Any]) -> dict[str, Any]:
    pair = (a["from_unit"], a["to_unit"])
    if pair not in _UNIT_FACTORS:
        raise ToolError(f"cannot convert {pair[0]} to {pair[1]}")
    return {"result": _num(a["value"] * _UNIT_FACTORS[pair]), "unit": pair[1]}


def _population(a: dict[str, Any]) -> dict[str, Any]:
    city = _city(a["city"])
    return {"city": city, "population": stable_hash("population", city) % 9_000_000 + 100_000}


def _p(
    name: str,
    type_: str,
    description: str,
    kind: str | None = None,
    *,
    enum: tuple[str, ...] | None = None,
    required: bool = True,
) -> Param:
    return Param(name=name, type=type_, description=description, kind=kind, enum=enum, required=required)


_CITY = _p("city", "string", "City name.", "city")
_DATE = _p("date", "string", "Date as YYYY-MM-DD.", "date")

CATALOG: tuple[ToolDef, ...] = (
    ToolDef(
        "get_weather",
        "weather",
        "Current weather in a city.",
        (_CITY, _p("unit", "string", "Temperature unit.", enum=("celsius", "fahrenheit"), required=False)),
        (
            Ask("What is the weather in {city}?"),
            Ask("How is the weather in {city} right now?"),
            Ask("What is the weather in {city} in {unit}?"),
        ),
        "get the weather in {city}",
        "It is {temperature} degrees {unit} and {condition} in {city}.",
        ("temperature", "condition"),
        _weather,
        {"city": "fictional_place"},
    ),
    ToolDef(
        "convert_currency",
        "finance",
        "Convert an amount of money between currencies.",
        (
            _p("amount", "number", "Amount to convert.", "amount"),
            _p("from_currency", "string", "ISO code of the source currency.", "currency"),
            _p("to_currency", "string", "ISO code of the target currency.", "currency"),
        ),
        (
            Ask("Convert {amount} {from_currency} to {to_currency}."),
            Ask("How much is {amount} {from_currency} in {to_currency}?"),
        ),
        "convert {amount} {from_currency} to {to_currency}",
        "{amount} {from_currency} is {result} {to_currency}.",
        ("result",),
        _convert_currency,
        {"to_currency": "bad_currency"},
    ),
    ToolDef(
        "create_event",
        "calendar",
        "Create a calendar event.",
        (
            _p("title", "string", "Event title.", "title"),
            _DATE,
            _p("time", "string", "Start time as HH:MM.", "time", required=False),
            _p("duration_minutes", "integer", "Length in minutes.", "minutes", required=False),
        ),
        (
            Ask("Create an event called {title} on {date}."),
            Ask("Schedule {title} on {date} at {time}."),
            Ask("Add {title} to my calendar on {date} at {time} for {duration_minutes} minutes."),
        ),
        "create the event {title} on {date}",
        "I created {title} on {date} at {time} with id {event_id}.",
        ("event_id",),
        _create_event,
    ),
    ToolDef(
        "add_numbers",
        "math",
        "Add two numbers.",
        (_p("a", "number", "First number.", "operand"), _p("b", "number", "Second number.", "operand")),
        (Ask("What is {a} plus {b}?"), Ask("Add {a} and {b}.")),
        "add {a} and {b}",
        "{a} plus {b} is {result}.",
        ("result",),
        _add,
    ),
    ToolDef(
        "search_flights",
        "travel",
        "Search the cheapest flight between two cities on a date.",
        (
            _p("origin", "string", "Departure city.", "city"),
            _p("destination", "string", "Arrival city.", "city"),
            _DATE,
            _p("cabin", "string", "Cabin class.", enum=("economy", "business", "first"), required=False),
            _p("nonstop", "boolean", "Only flights without stops.", required=False),
        ),
        (
            Ask("Find a flight from {origin} to {destination} on {date}."),
            Ask("Find a {cabin} flight from {origin} to {destination} on {date}."),
            Ask("Find a nonstop flight from {origin} to {destination} on {date}.", {"nonstop": True}),
        ),
        "find a flight from {origin} to {destination} on {date}",
        "Flight {flight_id} from {origin} to {destination} on {date} costs {price} USD in {cabin}.",
        ("flight_id", "price"),
        _search_flights,
        {"origin": "fictional_place"},
    ),
    ToolDef(
        "find_restaurants",
        "food",
        "Find a restaurant of a cuisine in a city.",
        (_CITY, _p("cuisine", "string", "Kind of food.", enum=_CUISINES)),
        (Ask("Find a {cuisine} restaurant in {city}."), Ask("Where can I eat {cuisine} food in {city}?")),
        "find a {cuisine} restaurant in {city}",
        "{name} ({restaurant_id}) in {city} is rated {rating}.",
        ("restaurant_id", "name"),
        _find_restaurants,
        {"city": "fictional_place"},
    ),
    ToolDef(
        "lookup_contact",
        "contacts",
        "Look up a contact in the address book.",
        (_p("name", "string", "Full name of the contact.", "contact"),),
        (Ask("Look up the contact details of {name}."), Ask("What are the email and phone of {name}?")),
        "look up {name}",
        "{name}: email {email}, phone {phone}.",
        ("email", "phone"),
        _lookup_contact,
        {"name": "unknown_contact"},
    ),
    ToolDef(
        "translate_text",
        "text",
        "Translate a text into another language.",
        (
            _p("text", "string", "Text to translate.", "text"),
            _p("target_language", "string", "Language to translate into.", enum=tuple(_LANGUAGES)),
        ),
        (Ask("Translate '{text}' into {target_language}."), Ask("How do you say '{text}' in {target_language}?")),
        "translate '{text}' into {target_language}",
        "In {target_language}: {translation}",
        ("translation",),
        _translate,
    ),
    ToolDef(
        "get_product_price",
        "shopping",
        "Price of a product in the shop.",
        (_p("product_id", "string", "Product identifier.", "product_id"),),
        (Ask("How much does product {product_id} cost?"), Ask("What is the price of product {product_id}?")),
        "get the price of product {product_id}",
        "Product {product_id} costs {price} USD.",
        ("price",),
        _product_price,
    ),
    ToolDef(
        "get_news",
        "news",
        "Latest news headline on a topic.",
        (
            _p("topic", "string", "News topic.", "topic"),
            _p("limit", "integer", "How many headlines to consider.", "limit", required=False),
        ),
        (Ask("What is the latest news about {topic}?"), Ask("Show me the top {limit} news about {topic}.")),
        "get the news about {topic}",
        "Top {topic} headline: {headline}",
        ("headline",),
        _news,
    ),
    ToolDef(
        "get_forecast",
        "weather",
        "Weather forecast for a city over the next days.",
        (_CITY, _p("days", "integer", "Number of days, 1 to 14.", "days")),
        (
            Ask("Give me the {days}-day forecast for {city}."),
            Ask("What will the weather be in {city} over the next {days} days?"),
        ),
        "get the {days}-day forecast for {city}",
        "The {days}-day forecast for {city}: {condition}, high {high}, low {low}.",
        ("high", "low"),
        _forecast,
        {"city": "fictional_place"},
    ),
    ToolDef(
        "get_stock_price",
        "finance",
        "Latest price of a stock.",
        (_p("symbol", "string", "Ticker symbol.", "symbol"),),
        (Ask("What is the stock price of {symbol}?"), Ask("How much is {symbol} trading at?")),
        "get the stock price of {symbol}",
        "{symbol} is trading at {price} USD.",
        ("price",),
        _stock_price,
        {"symbol": "unlisted_symbol"},
    ),
    ToolDef(
        "get_day_of_week",
        "calendar",
        "Day of the week of a date.",
        (_DATE,),
        (Ask("What day of the week is {date}?"), Ask("Which weekday falls on {date}?")),
        "find the weekday of {date}",
        "{date} is a {day}.",
        ("day",),
        _day_of_week,
    ),
    ToolDef(
        "multiply_numbers",
        "math",
        "Multiply two numbers.",
        (_p("a", "number", "First factor.", "operand"), _p("b", "number", "Second factor.", "operand")),
        (Ask("What is {a} times {b}?"), Ask("Multiply {a} by {b}.")),
        "multiply {a} by {b}",
        "{a} times {b} is {result}.",
        ("result",),
        _multiply,
    ),
    ToolDef(
        "book_flight",
        "travel",
        "Book a flight for a passenger.",
        (
            _p("flight_id", "string", "Flight identifier.", "flight_id"),
            _p("passenger", "string", "Passenger full name.", "person"),
        ),
        (Ask("Book flight {flight_id} for {passenger}."), Ask("Reserve a seat on {flight_id} for {passenger}.")),
        "book flight {flight_id} for {passenger}",
        "Flight {flight_id} is booked for {passenger}: {booking_id}.",
        ("booking_id",),
        _book_flight,
    ),
    ToolDef(
        "book_table",
        "food",
        "Reserve a table at a restaurant.",
        (
            _p("restaurant_id", "string", "Restaurant identifier.", "restaurant_id"),
            _DATE,
            _p("people", "integer", "Number of guests.", "people"),
        ),
        (
            Ask("Book a table at {restaurant_id} on {date} for {people} people."),
            Ask("Reserve restaurant {restaurant_id} for {people} guests on {date}."),
        ),
        "book a table at {restaurant_id} on {date} for {people}",
        "Your table for {people} on {date} is reserved: {reservation_id}.",
        ("reservation_id",),
        _book_table,
    ),
    ToolDef(
        "send_email",
        "contacts",
        "Send an email.",
        (
            _p("to", "string", "Recipient email address.", "email"),
            _p("subject", "string", "Subject line.", "title"),
            _p("body", "string", "Message text.", "text", required=False),
        ),
        (Ask("Send an email to {to} about {subject}."), Ask("Email {to} with the subject {subject} saying '{body}'.")),
        "email {to} about {subject}",
        "The email about {subject} was sent to {to}: {message_id}.",
        ("message_id",),
        _send_email,
    ),
    ToolDef(
        "count_words",
        "text",
        "Count the words of a text.",
        (_p("text", "string", "Text to count.", "text"),),
        (Ask("How many words are in '{text}'?"), Ask("Count the words in '{text}'.")),
        "count the words in '{text}'",
        "The text has {words} words.",
        ("words",),
        _count_words,
    ),
    ToolDef(
        "track_package",
        "shopping",
        "Where a package is.",
        (_p("tracking_number", "string", "Tracking number.", "tracking_number"),),
        (Ask("Where is my package {tracking_number}?"), Ask("Track package {tracking_number}.")),
        "track package {tracking_number}",
        "Package {tracking_number} is {status} in {location}.",
        ("status", "location"),
        _track_package,
    ),
    ToolDef(
        "get_local_time",
        "time",
        "Current local time in a city.",
        (_CITY,),
        (Ask("What time is it in {city}?"), Ask("Tell me the local time in {city}.")),
        "get the local time in {city}",
        "It is {time} in {city}.",
        ("time",),
        _local_time,
        {"city": "fictional_place"},
    ),
    ToolDef(
        "get_exchange_rate",
        "finance",
        "Exchange rate between two currencies.",
        (
            _p("base", "string", "ISO code of the base currency.", "currency"),
            _p("target", "string", "ISO code of the target currency.", "currency"),
        ),
        (Ask("What is the exchange rate from {base} to {target}?"), Ask("How many {target} is one {base}?")),
        "get the rate from {base} to {target}",
        "1 {base} is {rate} {target}.",
        ("rate",),
        _exchange_rate,
        {"target": "bad_currency"},
    ),
    ToolDef(
        "set_reminder",
        "calendar",
        "Set a reminder.",
        (
            _p("message", "string", "What to remember.", "message"),
            _DATE,
            _p("time", "string", "Time as HH:MM.", "time"),
        ),
        (Ask("Remind me to {message} on {date} at {time}."), Ask("Set a reminder on {date} at {time} to {message}.")),
        "set a reminder to {message} on {date} at {time}",
        "I set a reminder to {message} on {date} at {time}: {reminder_id}.",
        ("reminder_id",),
        _reminder,
    ),
    ToolDef(
        "calculate_percentage",
        "math",
        "A percentage of a number.",
        (_p("value", "number", "The number.", "operand"), _p("percent", "number", "Percentage.", "percent")),
        (Ask("What is {percent} percent of {value}?"), Ask("Calculate {percent}% of {value}.")),
        "take {percent} percent of {value}",
        "{percent} percent of {value} is {result}.",
        ("result",),
        _percentage,
    ),
    ToolDef(
        "find_hotels",
        "travel",
        "Find a hotel in a city for a number of nights.",
        (
            _CITY,
            _p("nights", "integer", "Number of nights.", "nights"),
            _p("stars", "integer", "Hotel stars, 1 to 5.", "stars", required=False),
        ),
        (
            Ask("Find a hotel in {city} for {nights} nights."),
            Ask("Find a {stars}-star hotel in {city} for {nights} nights."),
        ),
        "find a hotel in {city} for {nights} nights",
        "{hotel} in {city} costs {total_price} USD for {nights} nights.",
        ("hotel", "total_price"),
        _find_hotels,
        {"city": "fictional_place"},
    ),
    ToolDef(
        "get_air_quality",
        "weather",
        "Air quality index of a city.",
        (_CITY,),
        (Ask("How is the air quality in {city}?"), Ask("What is the air quality index of {city}?")),
        "get the air quality in {city}",
        "The air quality index in {city} is {aqi} ({level}).",
        ("aqi",),
        _air_quality,
        {"city": "fictional_place"},
    ),
    ToolDef(
        "is_prime",
        "math",
        "Whether an integer is a prime number.",
        (_p("number", "integer", "The integer to test.", "prime_candidate"),),
        (Ask("Is {number} a prime number?"), Ask("Check whether {number} is prime.")),
        "check whether {number} is prime",
        "{number} is {verdict}.",
        ("verdict",),
        _is_prime,
    ),
    ToolDef(
        "get_distance",
        "travel",
        "Distance between two cities.",
        (
            _p("origin", "string", "From city.", "city"),
            _p("destination", "string", "To city.", "city"),
            _p("unit", "string", "Distance unit.", enum=("km", "miles"), required=False),
        ),
        (
            Ask("How far is {origin} from {destination}?"),
            Ask("What is the distance from {origin} to {destination} in {unit}?"),
        ),
        "get the distance from {origin} to {destination}",
        "The distance from {origin} to {destination} is {distance} {unit}.",
        ("distance",),
        _distance,
        {"destination": "fictional_place"},
    ),
    ToolDef(
        "convert_units",
        "units",
        "Convert a quantity between units.",
        (
            _p("value", "number", "Quantity.", "operand"),
            _p("from_unit", "string", "Source unit.", enum=_UNITS),
            _p("to_unit", "string", "Target unit.", enum=_UNITS),
        ),
        (Ask("Convert {value} {from_unit} to {to_unit}."), Ask("How many {to_unit} is {value} {from_unit}?")),
        "convert {value} {from_unit} to {to_unit}",
        "{value} {from_unit} is {result} {to_unit}.",
        ("result",),
        _convert_units,
    ),
    ToolDef(
        "get_population",
        "geography",
        "Population of a city.",
        (_CITY,),
        (Ask("What is the population of {city}?"), Ask("How many people live in {city}?")),
        "get the population of {city}",
        "{city} has a population of {population}.",
        ("population",),
        _population,
        {"city": "fictional_place"},
    ),
)


def catalog_tools(count: int) -> list[ToolDef]:
    """The first `count` tools of the catalog (the order mixes domains)."""
    if not 1 <= count <= len(CATALOG):
        raise ValueError(
            f"tools: got {count}, the synthetic catalog has {len(CATALOG)} tools; use 1 ≤ tools ≤ {len(CATALOG)}, "
            "e.g. tools: 24"
        )
    return list(CATALOG[:count])


def tool_def(name: str) -> ToolDef:
    """The catalog tool of that name."""
    for definition in CATALOG:
        if definition.name == name:
            return definition
    raise KeyError(f"no synthetic tool named {name!r}; known: {[d.name for d in CATALOG]}")
