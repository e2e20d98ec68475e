"""Channel limits: SMS segments (GSM-7 / UCS-2), display widths, field parsing."""

import pytest

from assistant.marketing.channels import (
    CHANNELS, check_limits, display_width, fit_width, parse_fields, render_fields, sms_encoding, sms_segments,
    sms_units,
)


@pytest.mark.parametrize("length, segments", [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3)])
def test_gsm7_segments(length, segments):
    text = "a" * length
    assert sms_encoding(text) == "GSM-7"
    assert sms_segments(text) == segments


@pytest.mark.parametrize("length, segments", [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_segments_for_chinese(length, segments):
    text = "贷" * length
    assert sms_encoding(text) == "UCS-2"
    assert sms_segments(text) == segments


def test_gsm7_extension_characters_count_twice():
    assert sms_units("€[]") == 6
    assert sms_segments("a" * 158 + "€") == 1
    assert sms_segments("a" * 159 + "€") == 2


def test_one_curly_quote_turns_an_english_sms_into_ucs2():
    plain = "Meadow's loan " * 10
    curly = plain.replace("'", "\u2019")
    assert sms_encoding(plain) == "GSM-7" and sms_segments(plain) == 1
    assert sms_encoding(curly) == "UCS-2" and sms_segments(curly) == 3  # 140 characters > 134


def test_yen_sign_is_gsm7_but_an_emoji_is_two_ucs2_units():
    assert sms_encoding("¥50 off") == "GSM-7"
    assert sms_units("ok 🎉") == 5


def test_display_width_counts_cjk_twice():
    assert display_width("Meadow") == 6
    assert display_width("年化利率") == 8
    assert display_width("APR 年化") == 8


def test_sms_over_two_segments_is_an_issue():
    long_sms = "Meadow Consumer Finance: " + "x" * 290
    issues = check_limits({"body": long_sms}, "sms")
    assert len(issues) == 1 and issues[0].unit == "segments" and issues[0].measured == 3
    assert "GSM-7" in issues[0].detail
    assert check_limits({"body": "短信" * 60}, "sms") == []  # 120 UCS-2 units: 2 segments


@pytest.mark.parametrize("channel, fields, bad_field", [
    ("push", {"title": "t" * 51, "body": "ok body"}, "title"),
    ("push", {"title": "ok", "body": "b" * 151}, "body"),
    ("push", {"title": "标题" * 13, "body": "ok body"}, "title"),  # 26 CJK = width 52
    ("email", {"subject": "s" * 61, "body": "hello"}, "subject"),
    ("email", {"subject": "", "body": "hello"}, "subject"),  # a missing subject is an issue too
    ("banner", {"headline": "h" * 41, "body": "b", "cta": "go"}, "headline"),
    ("banner", {"headline": "h", "body": "b", "cta": "c" * 21}, "cta"),
    ("social", {"body": "s" * 281}, "body"),
])
def test_field_limits(channel, fields, bad_field):
    issues = check_limits(fields, channel)
    assert [i.field for i in issues] == [bad_field]


def test_fields_within_limits_have_no_issue():
    assert check_limits({"title": "t" * 50, "body": "b" * 150}, "push") == []
    assert check_limits({"subject": "s" * 60, "body": "x"}, "email") == []  # preheader is optional


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_render_and_parse_round_trip(channel):
    fields = {f.name: f"{f.name} text" for f in CHANNELS[channel].fields}
    assert parse_fields(render_fields(fields, channel), channel) == fields


def test_parse_accepts_chinese_labels_and_title_for_headline():
    fields = parse_fields("标题：费用透明\n\nMeadow Cash年化利率9.9%-23.9%\n\n按钮：查看额度", "banner")
    assert fields == {"headline": "费用透明", "body": "Meadow Cash年化利率9.9%-23.9%", "cta": "查看额度"}
    assert parse_fields("Subject: Hi\nBody: text", "email") == {"subject": "Hi", "body": "text"}


def test_fit_width_cuts_at_a_word_boundary():
    assert fit_width("Know the full cost before you sign", 20) == "Know the full cost"
    assert fit_width("签约前看清全部费用", 8) == "签约前看"
    assert fit_width("short", 20) == "short"


def test_sms_and_email_carry_an_opt_out_line_in_both_languages():
    for channel in ("sms", "email"):
        assert {"en", "zh"} <= set(CHANNELS[channel].opt_out)
    assert CHANNELS["sms"].opt_out["en"] == "Reply TD to unsubscribe"
    assert CHANNELS["sms"].opt_out["zh"] == "回复TD退订"
