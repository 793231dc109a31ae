"""GeoIP and ASN context from MaxMind-format databases (``.mmdb``), read with ``maxminddb``.

Both the City/Country layout (``country.iso_code``, ``country.names.en``, ``city.names.en``,
``location``) and the ASN layout (``autonomous_system_number``, ``autonomous_system_organization``)
are understood; one database may carry both. Nothing is looked up when no database is configured.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import maxminddb

__all__ = ["GeoIp"]


def _name(rec: Any) -> str | None:
    if isinstance(rec, dict):
        names = rec.get("names")
        if isinstance(names, dict):
            return names.get("en") or next(iter(names.values()), None)
    return None


class GeoIp:
    """One or two open databases (city/country and ASN)."""

    def __init__(self, city_db: str | Path | None = None, asn_db: str | Path | None = None) -> None:
        self._readers: list[Any] = []
        for path in (city_db, asn_db):
            if path:
                if not Path(path).is_file():
                    raise ValueError(f"GeoIP database not found: {path}")
                self._readers.append(maxminddb.open_database(str(path)))

    @property
    def configured(self) -> bool:
        return bool(self._readers)

    def lookup(self, ip: str) -> dict[str, Any] | None:
        """Country, city, coordinates, ASN and organisation of ``ip``, or None when unknown."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if addr.is_loopback:
            return None
        out: dict[str, Any] = {}
        for reader in self._readers:
            rec = reader.get(str(addr))
            if not isinstance(rec, dict):
                continue
            country = rec.get("country")
            if isinstance(country, dict):
                out["country"] = country.get("iso_code")
                out["country_name"] = _name(country)
            city = _name(rec.get("city"))
            if city:
                out["city"] = city
            loc = rec.get("location")
            if isinstance(loc, dict) and "latitude" in loc:
                out["latitude"], out["longitude"] = loc.get("latitude"), loc.get("longitude")
            if "autonomous_system_number" in rec:
                out["asn"] = rec["autonomous_system_number"]
                out["as_org"] = rec.get("autonomous_system_organization")
        return {k: v for k, v in out.items() if v is not None} or None

    def close(self) -> None:
        for r in self._readers:
            r.close()
