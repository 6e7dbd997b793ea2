"""Threat model: the weapon catalog (figures as data) and the state of live tracks."""

from __future__ import annotations

from tocsin.threats.catalog import (
    OBJECT_CLASSES,
    PROFILES,
    Catalog,
    Resolved,
    Weapon,
    load_catalog,
)

__all__ = [
    "OBJECT_CLASSES",
    "PROFILES",
    "Catalog",
    "Resolved",
    "Weapon",
    "load_catalog",
]
