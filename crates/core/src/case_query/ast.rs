//! The syntax tree of a case query, how to walk it, and its canonical text.

use std::fmt;

use jiff::civil::Date;

use super::compare::{classify, ValueKind};

/// The built-in field names, in lower case (recognised ignoring case).
pub const BUILTIN_FIELDS: [&str; 11] = [
    "case_id",
    "name",
    "external_id",
    "phone_number",
    "case_type",
    "language_code",
    "owner_id",
    "closed",
    "created_at",
    "modified_at",
    "group",
];

/// A query, or a part of one in parentheses.
///
/// A parsed `And` or `Or` has two or more parts. A chain `a AND b AND c` (or `a b c`) is one
/// `And` of three; parentheses are kept: `(a AND b) AND c` is an `And` inside an `And`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// Every part matches.
    And(Vec<Expr>),
    /// At least one part matches.
    Or(Vec<Expr>),
    /// One condition.
    Cond(Condition),
}

/// One `field op value`, typed by the kind of field it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// A text field (a built-in one or a property) against a value, under
    /// [`super::compare_text`]'s rules.
    Text {
        field: TextField,
        op: Op,
        value: Value,
    },
    /// `closed = true` and the like.
    Closed { op: EqOp, value: bool },
    /// `created_at` or `modified_at` against a day in the project's time zone. The parser
    /// never gives `~` here; built by hand, `~` matches nothing.
    Time {
        field: TimeField,
        op: Op,
        date: Date,
    },
    /// Membership of a case group.
    Group { op: EqOp, group: GroupRef },
}

/// A field read as text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextField {
    CaseId,
    Name,
    ExternalId,
    PhoneNumber,
    CaseType,
    LanguageCode,
    OwnerId,
    /// A case property, by its exact name.
    Property(String),
}

/// A stored instant of the case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeField {
    CreatedAt,
    ModifiedAt,
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `~`: contains, ignoring case.
    Contains,
}

/// `=` or `!=`, for the fields that take nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EqOp {
    Eq,
    Ne,
}

/// A case group named in a query.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupRef {
    /// `group = 12`: a bare whole number.
    Id(i64),
    /// `group = Gulu`, `group = "Gulu mothers"`, `group = "12"`: compared with group names
    /// as group names are (trimmed, ignoring case).
    Name(String),
}

/// A value as written, quotes and escapes removed. Whether it is a number or a date is
/// read from the text ([`Value::kind`]), so `18` and `"18"` are the same value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Value(String);

impl Value {
    /// A value with this text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `""`: "has no value".
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// A number, a date or other text.
    pub fn kind(&self) -> ValueKind {
        classify(&self.0)
    }
}

impl Op {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Contains => "~",
        }
    }
    /// `>`, `>=`, `<` or `<=`.
    pub fn is_ordering(self) -> bool {
        matches!(self, Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }
}

impl EqOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        self.as_op().as_str()
    }
    /// The same operator as an [`Op`].
    pub fn as_op(self) -> Op {
        match self {
            EqOp::Eq => Op::Eq,
            EqOp::Ne => Op::Ne,
        }
    }
}

impl TextField {
    /// The built-in field's name, or the property's name.
    pub fn name(&self) -> &str {
        match self {
            TextField::CaseId => "case_id",
            TextField::Name => "name",
            TextField::ExternalId => "external_id",
            TextField::PhoneNumber => "phone_number",
            TextField::CaseType => "case_type",
            TextField::LanguageCode => "language_code",
            TextField::OwnerId => "owner_id",
            TextField::Property(name) => name,
        }
    }
}

impl TimeField {
    /// The field's name.
    pub fn name(self) -> &'static str {
        match self {
            TimeField::CreatedAt => "created_at",
            TimeField::ModifiedAt => "modified_at",
        }
    }
}

impl Condition {
    /// The field as written in canonical text (`properties.group` for a property named
    /// `group`).
    pub fn field_text(&self) -> String {
        match self {
            Condition::Text {
                field: TextField::Property(name),
                ..
            } => property_text(name),
            Condition::Text { field, .. } => field.name().to_string(),
            Condition::Closed { .. } => "closed".to_string(),
            Condition::Time { field, .. } => field.name().to_string(),
            Condition::Group { .. } => "group".to_string(),
        }
    }
}

impl Expr {
    /// Every condition, in the order written (walks without recursion).
    pub fn conditions(&self) -> impl Iterator<Item = &Condition> {
        let mut stack = vec![self];
        std::iter::from_fn(move || {
            while let Some(e) = stack.pop() {
                match e {
                    Expr::Cond(c) => return Some(c),
                    Expr::And(parts) | Expr::Or(parts) => stack.extend(parts.iter().rev()),
                }
            }
            None
        })
    }
}

/// How a property's name is written: bare when it cannot be read as anything else.
fn property_text(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if BUILTIN_FIELDS.contains(&lower.as_str())
        || lower == "and"
        || lower == "or"
        || lower == "deleted"
        || lower.starts_with("properties.")
        || !name.chars().all(is_bare_char)
        || name.is_empty()
    {
        format!("properties.{name}")
    } else {
        name.to_string()
    }
}

/// A character that may be part of a bare word.
pub(super) fn is_bare_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '"' | '=' | '!' | '<' | '>' | '~')
}

/// Writes a value bare when it reads back the same, quoted otherwise.
fn write_text(f: &mut fmt::Formatter<'_>, text: &str, bare_ok: bool) -> fmt::Result {
    let keyword = text.eq_ignore_ascii_case("and") || text.eq_ignore_ascii_case("or");
    if bare_ok && !text.is_empty() && !keyword && text.chars().all(is_bare_char) {
        return f.write_str(text);
    }
    f.write_str("\"")?;
    for c in text.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_text(f, &self.0, true)
    }
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRef::Id(id) => write!(f, "{id}"),
            // A name of digits alone would read back as an id.
            GroupRef::Name(name) => write_text(f, name, !name.chars().all(|c| c.is_ascii_digit())),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field_text();
        match self {
            Condition::Text { op, value, .. } => write!(f, "{field} {} {value}", op.as_str()),
            Condition::Closed { op, value } => write!(f, "{field} {} {value}", op.as_str()),
            Condition::Time { op, date, .. } => write!(f, "{field} {} {date}", op.as_str()),
            Condition::Group { op, group } => write!(f, "{field} {} {group}", op.as_str()),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (parts, joint) = match self {
            Expr::Cond(c) => return c.fmt(f),
            Expr::And(parts) => (parts, " AND "),
            Expr::Or(parts) => (parts, " OR "),
        };
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                f.write_str(joint)?;
            }
            // AND binds tighter, so an AND inside an OR needs no parentheses; every other
            // group inside a group does (an AND inside an AND too, to keep the tree as it is).
            let bare = matches!(part, Expr::Cond(_))
                || (matches!(self, Expr::Or(_)) && matches!(part, Expr::And(_)));
            if bare {
                part.fmt(f)?;
            } else {
                write!(f, "({part})")?;
            }
        }
        Ok(())
    }
}

/// Whether `kind` may stand after an ordering operator.
pub(super) fn orderable(kind: ValueKind) -> bool {
    matches!(kind, ValueKind::Number(_) | ValueKind::Date)
}
