use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::GeneralSecurityProfile;

use super::Invalid;

/// How a user is shown to others: 1 to 32 characters of Unicode text in NFKC form (full-width
/// and other compatibility forms folded), made of identifier characters (UTS 39's General
/// Security Profile: the letters and digits of scripts in current use) and the separators
/// ` - _ . '`; no invisible or bidirectional-control characters. Unique among users
/// case-insensitively, and by look: see [`Nickname::look`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Nickname(String);

pub const MAX_NICKNAME_CHARS: usize = 32;

/// What may separate words of a nickname besides identifier characters.
const SEPARATORS: &[char] = &[' ', '-', '_', '.', '\''];

/// Characters that reorder text or hide: bidirectional controls (UAX #9's Bidi_Control) and
/// default-ignorable code points (zero-width spaces and joiners, fillers, variation selectors).
fn invisible_or_bidi(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || c.identifier_type() == Some(IdentifierType::Default_Ignorable)
        || c.is_control()
}

impl Nickname {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let folded: String = input.nfkc().collect();
        let nickname = folded.trim();
        if nickname.is_empty() {
            return Err(Invalid("must not be empty".into()));
        }
        if nickname.chars().count() > MAX_NICKNAME_CHARS {
            return Err(Invalid(format!("at most {MAX_NICKNAME_CHARS} characters")));
        }
        if nickname.chars().any(invisible_or_bidi) {
            return Err(Invalid(
                "must not contain invisible, bidirectional-control or control characters".into(),
            ));
        }
        if nickname
            .chars()
            .any(|c| !c.identifier_allowed() && !SEPARATORS.contains(&c))
        {
            return Err(Invalid(
                "letters and digits, with spaces and - _ . ' between them (no symbols or emoji)"
                    .into(),
            ));
        }
        Ok(Self(nickname.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form exact look-ups and the original uniqueness claim use: lower case.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// What the nickname looks like: its UTS 39 confusables skeleton, then case folded, without
    /// separators. Two nicknames that could be taken for each other (`paypal` and `pаypal` with
    /// a Cyrillic а, `Ada` and `ada_`, `g00gle` and `google`, `moIIy` with capital i and
    /// `molly`) have the same look; uniqueness is claimed on it. The skeleton is taken before
    /// folding case, since a capital I looks like an l, not like an i; names that differ only
    /// in case collide on their lower-case claim.
    pub fn look(&self) -> String {
        let folded: String = self.0.nfkc().collect();
        let skeleton: String = unicode_security::skeleton(&folded).collect();
        skeleton
            .to_lowercase()
            .chars()
            .filter(|c| !SEPARATORS.contains(c) && !c.is_whitespace())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Nickname;

    #[test]
    fn nicknames_are_short_visible_text() {
        assert_eq!(Nickname::parse(" Ada ").unwrap().as_str(), "Ada");
        assert!(Nickname::parse("").is_err());
        assert!(Nickname::parse("   ").is_err());
        assert!(Nickname::parse(&"x".repeat(33)).is_err());
        assert!(Nickname::parse(&"한".repeat(32)).is_ok());
        assert!(Nickname::parse("bell\u{7}").is_err());
        assert!(Nickname::parse("Ada Lovelace").is_ok());
        assert!(Nickname::parse("김철수").is_ok());
        assert!(Nickname::parse("Ada 한글").is_ok());
        assert!(Nickname::parse("o'brien-smith_2.0").is_ok());
    }

    #[test]
    fn compatibility_forms_fold_and_invisible_or_reordering_characters_are_refused() {
        assert_eq!(Nickname::parse("Ａｄａ").unwrap().as_str(), "Ada");
        for bad in [
            "Ada\u{200B}",
            "\u{200D}Ada",
            "Ad\u{00AD}a",
            "\u{202E}adA",
            "Ada\u{2066}",
            "\u{3164}",
            "Ada\u{FE0F}",
            "💸 money",
        ] {
            assert!(Nickname::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn look_alikes_share_a_look() {
        let look = |name: &str| Nickname::parse(name).unwrap().look();
        assert_eq!(look("paypal"), look("PayPal"));
        assert_eq!(look("paypal"), look("ｐａｙｐａｌ"));
        assert_eq!(look("google"), look("g00gle"));
        assert_eq!(look("Ada"), look("ada_"));
        assert_ne!(look("Ada"), look("Bob"));
        assert_eq!(look("paypal"), look("p\u{0430}ypal"));
        assert_eq!(look("рауре"), look("paype"));
        assert_eq!(look("molliea"), look("moIIiea"), "capital I for l");
        assert_eq!(look("mollea"), look("mo11ea"), "digit 1 for l");
    }
}
