"""Data cards: a card for any manifest, and built-in cards of the known public datasets."""

from .card import CARD_NAME, CardError, parse_front_matter, read_card_header, render_card, summarize_manifest, write_card
from .catalog import known_card, known_card_info, known_card_path, known_names, resolve_known_name

__all__ = [
    "CARD_NAME",
    "CardError",
    "known_card",
    "known_card_info",
    "known_card_path",
    "known_names",
    "parse_front_matter",
    "read_card_header",
    "render_card",
    "resolve_known_name",
    "summarize_manifest",
    "write_card",
]
