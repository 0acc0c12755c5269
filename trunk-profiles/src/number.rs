//! Dialled-number rewriting for a trunk: what the campaign holds -> what the carrier wants in
//! the Request-URI user part.

/// Most digits an international number may have (ITU-T E.164 §6.1: 15 digits including the
/// country code).
pub const E164_MAX_DIGITS: usize = 15;

/// How a trunk rewrites numbers. Steps run in this order:
///
/// 1. Visual separators (space, `-`, `.`, `(`, `)`) are removed; what is left must be digits
///    with at most one leading `+`.
/// 2. `strip_prefix`, when the number starts with it, is removed (an outside-line digit);
///    numbers written with `+` are left alone.
/// 3. When `e164` is set the number becomes `+<country code><national number>`: a leading
///    `international_prefix` (`00`) becomes `+`; a leading `national_prefix` (`0`) is replaced
///    by `+country_code`; any other number without `+` gets `+country_code` in front. Without
///    `country_code` only numbers that are already international are accepted. The result has
///    at most 15 digits.
/// 4. `strip_plus` removes a leading `+` (for carriers that want `15550100` rather than `+15550100`).
/// 5. `dial_prefix` is put in front (a carrier's routing or tech prefix).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct NumberRewrite {
    /// Removed from the front when present (step 2).
    pub strip_prefix: String,
    /// Normalise to E.164 (step 3).
    pub e164: bool,
    /// Country calling code without `+`, 1 to 3 digits (`"1"`, `"44"`, `"353"`).
    pub country_code: Option<String>,
    /// Trunk prefix of national numbers, replaced by the country code (default `"0"`).
    pub national_prefix: String,
    /// Prefix that marks an international number dialled from the country (default `"00"`).
    pub international_prefix: String,
    /// Remove a leading `+` after normalisation (step 4).
    pub strip_plus: bool,
    /// Added in front last (step 5); digits, `*`, `#` or `+`.
    pub dial_prefix: String,
}

/// Why a number cannot be dialled on a trunk. The number itself is bad input from a campaign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NumberError {
    /// Nothing left after removing separators and prefixes.
    #[error("empty number")]
    Empty,
    /// A character that is neither a digit, a leading `+` nor a separator.
    #[error("invalid character {character:?} at position {position} in number")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// 0-based character position in the input.
        position: usize,
    },
    /// E.164 was requested, the number is national, and the trunk has no `country_code`.
    #[error("number is not international and the trunk has no country_code to make it so")]
    NotInternational,
    /// More digits than E.164 allows.
    #[error("number has {digits} digits, E.164 allows at most 15")]
    TooLong {
        /// Digit count after normalisation.
        digits: usize,
    },
}

impl NumberRewrite {
    /// Applies the rewriting steps documented on [`NumberRewrite`].
    pub fn rewrite(&self, number: &str) -> Result<String, NumberError> {
        let mut plus = false;
        let mut digits = String::with_capacity(number.len());
        for (position, character) in number.chars().enumerate() {
            match character {
                '0'..='9' => digits.push(character),
                '+' if !plus && digits.is_empty() => plus = true,
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(NumberError::InvalidCharacter {
                        character,
                        position,
                    })
                }
            }
        }
        if !plus && !self.strip_prefix.is_empty() {
            if let Some(rest) = digits.strip_prefix(self.strip_prefix.as_str()) {
                digits = rest.to_string();
            }
        }
        if digits.is_empty() {
            return Err(NumberError::Empty);
        }
        if self.e164 && !plus {
            let intl = (!self.international_prefix.is_empty())
                .then(|| digits.strip_prefix(self.international_prefix.as_str()))
                .flatten();
            if let Some(rest) = intl {
                digits = rest.to_string();
            } else {
                let cc = self
                    .country_code
                    .as_deref()
                    .ok_or(NumberError::NotInternational)?;
                let national = (!self.national_prefix.is_empty())
                    .then(|| digits.strip_prefix(self.national_prefix.as_str()))
                    .flatten()
                    .unwrap_or(&digits);
                digits = format!("{cc}{national}");
            }
            plus = true;
            if digits.is_empty() {
                return Err(NumberError::Empty);
            }
        }
        if self.e164 && digits.len() > E164_MAX_DIGITS {
            return Err(NumberError::TooLong {
                digits: digits.len(),
            });
        }
        if self.strip_plus {
            plus = false;
        }
        let mut out = String::with_capacity(self.dial_prefix.len() + 1 + digits.len());
        out.push_str(&self.dial_prefix);
        if plus {
            out.push('+');
        }
        out.push_str(&digits);
        Ok(out)
    }
}
