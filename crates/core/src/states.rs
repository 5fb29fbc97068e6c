//! The states and kinds that records go through, each an enum with one mapping to and from
//! the text stored in the database and shown in the API (`as_str`, `parse`, `Serialize`).

/// An enum whose every variant has a fixed stored text.
macro_rules! stored_text {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The variant stored as `text`, if any.
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// Every stored text, for messages that list the choices: `a, b, c`.
            pub fn choices() -> String {
                $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownState;

            fn from_str(text: &str) -> Result<$name, UnknownState> {
                $name::parse(text).ok_or_else(|| UnknownState {
                    what: stringify!($name),
                    text: text.chars().take(64).collect(),
                })
            }
        }

        /// Compares with a stored text (tests assert the texts the API shows).
        impl PartialEq<&str> for $name {
            fn eq(&self, text: &&str) -> bool {
                self.as_str() == *text
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, v: &$name) -> bool {
                *self == v.as_str()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

/// A stored text that names no variant (written by a newer version, or damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a {what}")]
pub struct UnknownState {
    pub what: &'static str,
    pub text: String,
}

stored_text! {
    /// Which way a message went.
    pub enum Direction {
        Outbound = "outbound",
        Inbound = "inbound",
    }
}

stored_text! {
    /// What an outbound message is.
    pub enum MessageKind {
        /// Written by a user, a broadcast or an API client.
        Normal = "normal",
        /// The reply to an opt-out or opt-in keyword.
        Confirmation = "confirmation",
    }
}

stored_text! {
    /// Where a message is: outbound ones go from `queued` on; inbound ones are `received`.
    pub enum MessageStatus {
        Queued = "queued",
        Sending = "sending",
        Sent = "sent",
        Delivered = "delivered",
        Failed = "failed",
        Expired = "expired",
        Cancelled = "cancelled",
        Received = "received",
    }
}

impl MessageStatus {
    /// The outbound statuses, in the order a message goes through them.
    pub const OUTBOUND: [MessageStatus; 7] = [
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Failed,
        MessageStatus::Expired,
        MessageStatus::Cancelled,
    ];
}

stored_text! {
    /// Where a background job's record (an upload, an export) is.
    pub enum JobStatus {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

impl JobStatus {
    /// Whether it has ended (done or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }
}

stored_text! {
    /// A broadcast's stored state.
    pub enum BroadcastState {
        /// Occurrences to come.
        Active = "active",
        Paused = "paused",
        Cancelled = "cancelled",
        /// Its schedule has no occurrence left.
        Finished = "finished",
    }
}

stored_text! {
    /// What users see of a broadcast: its state and its last occurrence's progress together.
    pub enum BroadcastStatus {
        Scheduled = "scheduled",
        Sending = "sending",
        Completed = "completed",
        Cancelled = "cancelled",
        Paused = "paused",
        Failed = "failed",
    }
}

impl BroadcastStatus {
    /// What users see, from the stored state, the last occurrence's status and whether any of
    /// its messages are still queued or being handed over.
    pub fn derive(
        state: BroadcastState,
        last_occurrence: Option<OccurrenceStatus>,
        messages_pending: bool,
    ) -> BroadcastStatus {
        let in_progress = last_occurrence == Some(OccurrenceStatus::FanningOut) || messages_pending;
        match state {
            BroadcastState::Cancelled => BroadcastStatus::Cancelled,
            BroadcastState::Paused => BroadcastStatus::Paused,
            _ if in_progress => BroadcastStatus::Sending,
            BroadcastState::Active => BroadcastStatus::Scheduled,
            // A one-off (or the last) occurrence that could not be sent.
            BroadcastState::Finished
                if matches!(
                    last_occurrence,
                    Some(OccurrenceStatus::Failed | OccurrenceStatus::Missed)
                ) =>
            {
                BroadcastStatus::Failed
            }
            BroadcastState::Finished => BroadcastStatus::Completed,
        }
    }
}

stored_text! {
    /// One occurrence of a broadcast.
    pub enum OccurrenceStatus {
        /// Its recipients are being written to the outbox.
        FanningOut = "fanning_out",
        Done = "done",
        /// Not sent: too late (the server was down), or its fan-out could not start in time.
        Missed = "missed",
        Cancelled = "cancelled",
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_reads_back_from_its_text() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(*s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in OccurrenceStatus::ALL {
            assert_eq!(s.as_str().parse::<OccurrenceStatus>(), Ok(*s));
        }
        assert_eq!(OccurrenceStatus::FanningOut.as_str(), "fanning_out");
        assert_eq!(
            "sending ".parse::<JobStatus>(),
            Err(UnknownState {
                what: "JobStatus",
                text: "sending ".into()
            })
        );
        assert_eq!(BroadcastState::parse("Active"), None);
    }

    #[test]
    fn a_broadcasts_status_follows_its_state_then_its_progress() {
        use BroadcastState as S;
        use BroadcastStatus as B;
        use OccurrenceStatus as O;
        let cases = [
            (S::Cancelled, Some(O::FanningOut), true, B::Cancelled),
            (S::Paused, Some(O::FanningOut), false, B::Paused),
            (S::Active, Some(O::FanningOut), false, B::Sending),
            (S::Finished, Some(O::Done), true, B::Sending),
            (S::Active, Some(O::Done), false, B::Scheduled),
            (S::Active, None, false, B::Scheduled),
            (S::Active, Some(O::Missed), false, B::Scheduled),
            (S::Finished, Some(O::Missed), false, B::Failed),
            (S::Finished, Some(O::Failed), false, B::Failed),
            (S::Finished, Some(O::Done), false, B::Completed),
            (S::Finished, Some(O::Cancelled), false, B::Completed),
        ];
        for (state, last, pending, want) in cases {
            assert_eq!(
                BroadcastStatus::derive(state, last, pending),
                want,
                "{state} {last:?} {pending}"
            );
        }
    }

    #[test]
    fn outbound_statuses_are_the_messages_but_received() {
        let outbound: Vec<_> = MessageStatus::OUTBOUND.to_vec();
        let mut all = MessageStatus::ALL.to_vec();
        all.retain(|s| *s != MessageStatus::Received);
        assert_eq!(outbound, all);
    }
}
