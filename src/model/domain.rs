//! The closed sets of values the product is built on — who pays for a
//! call, who wrote a message and how it ended, an account's role — shared
//! by the server, the database and the browser. Each is stored and sent
//! as the word `as_str` gives (the database's values, unchanged), and read
//! back with `parse`, which refuses a word it does not know instead of
//! guessing.

/// Says which word a value of `kind` did not recognise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind}: {word:?}")]
pub struct UnknownWord {
    pub kind: &'static str,
    pub word: String,
}

/// An enum whose variants are stored and sent as fixed words.
macro_rules! worded {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;

            fn from_str(word: &str) -> Result<Self, UnknownWord> {
                match word {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord {
                        kind: stringify!($name),
                        word: word.to_owned(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

worded! {
    /// Whose Anthropic key a call went out on, and so who pays for it.
    pub enum PaidBy {
        /// The operator's platform key, under the user's plan.
        Platform = "platform",
        /// The user's own saved key.
        OwnKey = "user",
    }
}

worded! {
    /// Who wrote a message of a conversation.
    pub enum Speaker {
        User = "user",
        Assistant = "assistant",
    }
}

worded! {
    /// Where a reply stands.
    pub enum MessageStatus {
        /// Still arriving (or, read back later, cut by a restart).
        Streaming = "streaming",
        Complete = "complete",
        /// The user stopped it, or the connection went away.
        Stopped = "stopped",
        Error = "error",
    }
}

worded! {
    /// What an account may do.
    pub enum Role {
        User = "user",
        Admin = "admin",
    }
}

impl PaidBy {
    /// How a list of calls names the payer to the user.
    pub fn label(self) -> &'static str {
        match self {
            PaidBy::Platform => "free tier",
            PaidBy::OwnKey => "your key",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_from_its_word_and_its_json() {
        for paid_by in PaidBy::ALL {
            assert_eq!(paid_by.as_str().parse::<PaidBy>(), Ok(*paid_by));
            let json = serde_json::to_string(paid_by).unwrap();
            assert_eq!(json, format!("\"{}\"", paid_by.as_str()));
        }
        for status in MessageStatus::ALL {
            assert_eq!(status.as_str().parse::<MessageStatus>(), Ok(*status));
        }
        assert_eq!("assistant".parse::<Speaker>(), Ok(Speaker::Assistant));
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
    }

    #[test]
    fn an_unknown_word_is_refused_not_guessed() {
        assert_eq!(
            "Admin".parse::<Role>(),
            Err(UnknownWord {
                kind: "Role",
                word: "Admin".into()
            })
        );
        assert!(serde_json::from_str::<PaidBy>("\"platfrom\"").is_err());
        assert!("".parse::<MessageStatus>().is_err());
    }
}
