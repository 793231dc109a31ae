"""Enrichment: intel matches, asset and identity context, GeoIP/ASN and reputation lookups for alerts."""
