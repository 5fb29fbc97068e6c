//! Casecast's domain: types and rules with no I/O.

pub mod broadcast;
pub mod case;
pub mod case_query;
pub mod case_sheet;
pub mod gateway;
pub mod identifier;
pub mod ids;
pub mod keyword;
pub mod opt_out;
pub mod password;
pub mod phone;
pub mod quiet_hours;
pub mod recurrence;
pub mod reminder;
pub mod settings;
pub mod sheet;
pub mod sheet_out;
pub mod sms;
pub mod states;
pub mod survey;
pub mod template;
pub mod time;

pub use ids::{CaseId, CountryCode, Email, InvalidValue, ProjectSlug, Role, TimeZoneName};
pub use phone::{PhoneError, PhoneNumber};
