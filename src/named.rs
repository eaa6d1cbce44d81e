//! Enums named on the command line and in files by fixed words (`f32`, `series-dirs`, …):
//! [`named_words!`] gives such an enum its `Display`, `FromStr` (an unknown word is refused with
//! the list) and `NAMES`, from one table, so the library needs no CLI crate and the words are
//! spelled once.

/// `named_words!(Type, "what", { Variant => "word", ... })`.
macro_rules! named_words {
    ($ty:ident, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// Every word, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($word),+];
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self {
                    $($ty::$variant => $word),+
                })
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "unknown {} '{s}' (one of: {})",
                        $what,
                        Self::NAMES.join(", ")
                    )),
                }
            }
        }
    };
}
pub(crate) use named_words;

#[cfg(test)]
mod tests {
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Colour {
        Red,
        DarkBlue,
    }
    named_words!(Colour, "colour", { Red => "red", DarkBlue => "dark-blue" });

    #[test]
    fn words_round_trip_and_unknown_ones_are_listed() {
        for c in [Colour::Red, Colour::DarkBlue] {
            assert_eq!(c.to_string().parse::<Colour>(), Ok(c));
        }
        assert_eq!(Colour::NAMES, ["red", "dark-blue"]);
        let e = "green".parse::<Colour>().expect_err("unknown");
        assert_eq!(e, "unknown colour 'green' (one of: red, dark-blue)");
    }
}
