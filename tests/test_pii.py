"""PII detectors: valid and invalid values for each kind, redaction and masking."""

from __future__ import annotations

import pytest

from assistant.guard import pii
from assistant.guard.pii import find_pii, id_check_digit, luhn_valid, mask, redact, valid_cn_id


def make_id(first17: str = "11010119900307123") -> str:
    return first17 + id_check_digit(first17)


def luhn_complete(prefix: str) -> str:
    """prefix + the digit that makes it pass Luhn."""
    return next(prefix + d for d in "0123456789" if luhn_valid(prefix + d))


def kinds(text: str) -> list[str]:
    return [m.kind for m in find_pii(text)]


# --- mainland ID numbers (GB 11643, ISO 7064 MOD 11-2) ---------------------------------

def test_id_check_digit_known_values():
    # published example: 11010519491231002X
    assert id_check_digit("11010519491231002") == "X"
    assert valid_cn_id("11010519491231002X") and valid_cn_id("11010519491231002x")


@pytest.mark.parametrize("first17", ["11010119900307123", "44030419851120456", "31011520000229001"])
def test_valid_ids_are_found(first17):
    number = make_id(first17)
    assert valid_cn_id(number)
    assert kinds(f"my ID is {number}") == ["id_number"]
    assert kinds(f"身份证号{number}，谢谢") == ["id_number"]


def test_id_with_wrong_check_digit_is_not_an_id():
    good = make_id()
    wrong = good[:-1] + next(d for d in "0123456789X" if d != good[-1])
    assert not valid_cn_id(wrong)
    assert "id_number" not in kinds(f"my ID is {wrong}")


@pytest.mark.parametrize("bad", ["110101199013071238", "110101199002301230", "010101199003071233", "1101011990030712"])
def test_malformed_ids_are_rejected(bad):
    # month 13, 30 February, leading zero, 16 digits
    assert not valid_cn_id(bad)


def test_id_with_spaces_between_groups():
    number = make_id()
    spaced = f"{number[:6]} {number[6:14]} {number[14:]}"
    assert kinds(f"ID {spaced}") == ["id_number"]


# --- bank cards (Luhn) -----------------------------------------------------------------

@pytest.mark.parametrize("card", ["4111111111111111", "5555555555554444", "378282246310005",
                                  luhn_complete("621700123456789012"), luhn_complete("622202123456789")])
def test_luhn_valid_cards_are_found(card):
    assert kinds(f"card {card} please") == ["card"]


def test_sixteen_digits_failing_luhn_is_not_a_card():
    assert not luhn_valid("4111111111111112")
    assert kinds("card 4111111111111112 please") == []


def test_card_with_spaces_or_dashes():
    assert kinds("4111 1111 1111 1111") == ["card"]
    assert kinds("4111-1111-1111-1111") == ["card"]


def test_amounts_dates_and_hotlines_are_not_pii():
    text = "I earn 12000 a month, want 50000 over 24 months from 2026-07-01; call 400-820-6600 or 12378."
    assert find_pii(text) == []


# --- phones ----------------------------------------------------------------------------

@pytest.mark.parametrize("phone", ["13812345678", "138 1234 5678", "138-1234-5678", "+86 13912345678",
                                   "+8615012345678", "008618612345678"])
def test_mainland_mobiles(phone):
    assert kinds(f"call me on {phone} please") == ["phone"]


@pytest.mark.parametrize("phone", ["+44 20 7946 0958", "+1 (415) 555-2671", "+852 9123 4567", "+49 30 1234567"])
def test_international_numbers(phone):
    assert kinds(f"my number is {phone}") == ["phone"]


@pytest.mark.parametrize("not_phone", ["12812345678", "1381234567", "138123456789", "+1 23"])
def test_not_mobiles(not_phone):
    # second digit 2, ten digits, twelve digits, too short
    assert "phone" not in kinds(f"number {not_phone}")


# --- e-mail ----------------------------------------------------------------------------

def test_email_and_allow_list():
    assert kinds("write to zhang.san+loan@example.com.cn") == ["email"]
    assert find_pii("complaints@meadowfinance.example", allow=["meadowfinance.example"]) == []
    assert kinds("not an email: user@localhost or @handle") == []


# --- verification codes and passwords --------------------------------------------------

@pytest.mark.parametrize("text", ["my verification code is 482913", "the code is 123456", "OTP: 9921",
                                  "验证码是 384756", "验证码：384756，请查收", "482913 is my code",
                                  "sms code 55821", "PIN is 9876", "我的动态码123456"])
def test_verification_codes(text):
    assert kinds(text) == ["code"]


@pytest.mark.parametrize("text", ["zip code 100000", "error code 4003", "promo code 2026", "product code is 8812"])
def test_codes_that_are_not_secrets(text):
    assert kinds(text) == []


@pytest.mark.parametrize("text", ["my password is Hunter2!", "password: s3cr3t", "pwd=abc123",
                                  "密码是abc12345", "我的支付密码123456", "my password is sunshine"])
def test_passwords(text):
    assert kinds(text) == ["password"]


@pytest.mark.parametrize("text", ["I forgot my password", "password is wrong", "my password is not working",
                                  "what is the password policy?", "忘记密码了怎么办"])
def test_password_talk_without_a_password(text):
    assert kinds(text) == []


# --- redaction and masking -------------------------------------------------------------

def test_redact_replaces_every_kind_with_a_token():
    number = make_id()
    text = (f"ID {number}, card 4111111111111111, phone 13812345678, mail a.b@example.com, "
            f"code is 482913, password: Tr0ub4dor")
    out = redact(text)
    for token in pii.TOKENS.values():
        assert token in out
    for secret in (number, "4111111111111111", "13812345678", "a.b@example.com", "482913", "Tr0ub4dor"):
        assert secret not in out


def test_mask_for_the_customer():
    text = "Your card 4111111111111111 and 13812345678, mail zhang@example.com, code 482913"
    out = mask(text, find_pii(text))
    assert "Your card ending 1111" in out and "card card" not in out
    assert "138****5678" in out and "z***@example.com" in out
    assert "482913" not in out and "[removed]" in out


def test_redact_value_walks_tool_arguments():
    value = {"phone": "13812345678", "items": [{"card": "4111111111111111"}], "amount": 5000}
    assert pii.redact_value(value) == {"phone": "[PHONE]", "items": [{"card": "[CARD]"}], "amount": 5000}


def test_scrub_secrets_keeps_other_pii():
    text = "card 4111111111111111, code is 482913"
    assert pii.scrub_secrets(text, find_pii(text)) == "card 4111111111111111, code is [CODE]"
