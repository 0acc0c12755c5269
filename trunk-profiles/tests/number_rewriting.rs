//! `Trunk::rewrite_number`: what the campaign holds -> what the carrier wants.

use trunk_profiles::{Config, NumberError, Trunk};

fn trunk(rules: &str) -> Trunk {
    let text = format!(
        "[[trunk]]\nname = \"t\"\nproxy = \"sip.example.net\"\nregister = false\n{rules}\n"
    );
    let config =
        Config::from_str_named(&text, "dialer.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    config.trunks()[0].clone()
}

#[test]
fn without_rules_numbers_pass_unchanged_minus_separators() {
    let t = trunk("");
    assert_eq!(
        t.rewrite_number("+1 (555) 010-0123").unwrap(),
        "+15550100123"
    );
    assert_eq!(t.rewrite_number("030 1234.567").unwrap(), "0301234567");
}

#[test]
fn strip_plus_removes_the_leading_plus() {
    let t = trunk("strip_plus = true");
    assert_eq!(t.rewrite_number("+15550100").unwrap(), "15550100");
    assert_eq!(t.rewrite_number("15550100").unwrap(), "15550100");
}

#[test]
fn dial_prefix_is_added_last() {
    let t = trunk("e164 = true\ncountry_code = \"44\"\ndial_prefix = \"7788#\"");
    assert_eq!(
        t.rewrite_number("02071234567").unwrap(),
        "7788#+442071234567"
    );
}

#[test]
fn national_numbers_become_e164_with_the_country_code() {
    let t = trunk("e164 = true\ncountry_code = \"49\"");
    assert_eq!(t.rewrite_number("0301234567").unwrap(), "+49301234567");
    assert_eq!(
        t.rewrite_number("00441234567").unwrap(),
        "+441234567",
        "00 is international"
    );
    assert_eq!(
        t.rewrite_number("+33123456789").unwrap(),
        "+33123456789",
        "already E.164"
    );
    // NANP style: no trunk prefix, the country code goes in front.
    let t = trunk("e164 = true\ncountry_code = \"1\"\nnational_prefix = \"\"");
    assert_eq!(t.rewrite_number("5550100123").unwrap(), "+15550100123");
}

#[test]
fn e164_without_country_code_accepts_only_international_numbers() {
    let t = trunk("e164 = true");
    assert_eq!(t.rewrite_number("+15550100").unwrap(), "+15550100");
    assert_eq!(t.rewrite_number("0015550100").unwrap(), "+15550100");
    assert_eq!(
        t.rewrite_number("0301234567"),
        Err(NumberError::NotInternational)
    );
}

#[test]
fn strip_prefix_removes_an_outside_line_digit_before_normalising() {
    let t = trunk("strip_prefix = \"9\"\ne164 = true\ncountry_code = \"49\"\nstrip_plus = true");
    assert_eq!(t.rewrite_number("90301234567").unwrap(), "49301234567");
    assert_eq!(
        t.rewrite_number("0301234567").unwrap(),
        "49301234567",
        "prefix is optional"
    );
    assert_eq!(
        t.rewrite_number("+49301234567").unwrap(),
        "49301234567",
        "+ numbers untouched"
    );
    assert_eq!(t.rewrite_number("9"), Err(NumberError::Empty));
}

#[test]
fn bad_numbers_are_errors_not_guesses() {
    let t = trunk("e164 = true\ncountry_code = \"49\"");
    assert_eq!(t.rewrite_number(""), Err(NumberError::Empty));
    assert_eq!(t.rewrite_number(" - "), Err(NumberError::Empty));
    assert_eq!(
        t.rewrite_number("030x123"),
        Err(NumberError::InvalidCharacter {
            character: 'x',
            position: 3
        })
    );
    assert_eq!(
        t.rewrite_number("+1+2"),
        Err(NumberError::InvalidCharacter {
            character: '+',
            position: 2
        })
    );
    assert_eq!(
        t.rewrite_number("+1234567890123456"),
        Err(NumberError::TooLong { digits: 16 })
    );
    assert_eq!(
        t.rewrite_number("+123456789012345").unwrap(),
        "+123456789012345",
        "15 is the max"
    );
}

#[test]
fn rewriting_keys_are_validated_at_load() {
    let e = Config::from_str_named(
        "[[trunk]]\nname = \"t\"\nproxy = \"p.example\"\nregister = false\ne164 = true\ncountry_code = \"+49\"\n",
        "dialer.toml",
        &|_| None,
    )
    .unwrap_err();
    let d = &e.diagnostics()[0];
    assert_eq!(
        (d.line, d.column, d.key.as_str()),
        (6, 16, "trunk[0].country_code")
    );

    let e = Config::from_str_named(
        "[[trunk]]\nname = \"t\"\nproxy = \"p.example\"\nregister = false\ndial_prefix = \"12a\"\n",
        "dialer.toml",
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(e.diagnostics()[0].key, "trunk[0].dial_prefix");
}
