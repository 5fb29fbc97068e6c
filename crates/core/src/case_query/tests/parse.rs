//! The parser: operators, fields, values, precedence, and every error with its position.

use jiff::civil::date;

use super::super::{
    CaseQuery, Condition, EqOp, Expr, GroupRef, Op, TextField, TimeField, MAX_CONDITIONS,
    MAX_DEPTH, MAX_QUERY_CHARS,
};
use super::{group, prop, text};

fn parsed(q: &str) -> Expr {
    match CaseQuery::parse(q) {
        Ok(query) => query.expr().clone(),
        Err(e) => panic!("{q:?} did not parse: {e}"),
    }
}

fn error(q: &str) -> String {
    match CaseQuery::parse(q) {
        Ok(query) => panic!("{q:?} parsed, as {query:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_operator_with_and_without_spaces() {
    let table = [
        ("age = 18", "age=18", Op::Eq),
        ("age != 18", "age!=18", Op::Ne),
        ("age > 18", "age>18", Op::Gt),
        ("age >= 18", "age>=18", Op::Ge),
        ("age < 18", "age<18", Op::Lt),
        ("age <= 18", "age<=18", Op::Le),
        ("age ~ 18", "age~18", Op::Contains),
    ];
    for (spaced, tight, op) in table {
        assert_eq!(parsed(spaced), prop("age", op, "18"), "{spaced}");
        assert_eq!(parsed(tight), prop("age", op, "18"), "{tight}");
        assert_eq!(
            CaseQuery::parse(tight).map(|q| q.to_string()),
            Ok(spaced.to_string())
        );
    }
}

#[test]
fn and_binds_tighter_than_or_and_a_space_means_and() {
    let (a, b, c) = (
        prop("a", Op::Eq, "1"),
        prop("b", Op::Eq, "2"),
        prop("c", Op::Eq, "3"),
    );
    let and_first = Expr::Or(vec![Expr::And(vec![a.clone(), b.clone()]), c.clone()]);
    let and_last = Expr::Or(vec![a.clone(), Expr::And(vec![b.clone(), c.clone()])]);
    assert_eq!(parsed("a = 1 AND b = 2 OR c = 3"), and_first);
    assert_eq!(parsed("a = 1 b = 2 OR c = 3"), and_first);
    assert_eq!(parsed("a = 1 and b = 2 or c = 3"), and_first);
    assert_eq!(parsed("(a = 1 AND b = 2) OR c = 3"), and_first);
    assert_eq!(parsed("a = 1 OR b = 2 AND c = 3"), and_last);
    assert_eq!(parsed("a = 1 Or b = 2 c = 3"), and_last);
    assert_eq!(
        parsed("(a = 1 OR b = 2) c = 3"),
        Expr::And(vec![Expr::Or(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(
        parsed("a = 1 AND b = 2 AND c = 3"),
        Expr::And(vec![a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(
        parsed("a = 1 OR b = 2 OR c = 3"),
        Expr::Or(vec![a.clone(), b.clone(), c.clone()])
    );
    // Parentheses are kept where they change the tree, dropped where they do not.
    assert_eq!(
        parsed("(a = 1 AND b = 2) AND c = 3"),
        Expr::And(vec![Expr::And(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(parsed("((a = 1))"), a);
    assert_eq!(parsed("  a=1\n\tb=2 "), Expr::And(vec![a, b]));
}

#[test]
fn canonical_text() {
    let table = [
        ("a=1 b=2 or c=3", "a = 1 AND b = 2 OR c = 3"),
        ("(a=1 or b=2) c=3", "(a = 1 OR b = 2) AND c = 3"),
        ("(a=1 and b=2) and c=3", "(a = 1 AND b = 2) AND c = 3"),
        ("a = (b = 1)", ""),
        (
            "name = \"Gulu \\\"East\\\"\"",
            "name = \"Gulu \\\"East\\\"\"",
        ),
        ("name = \"Gulu\"", "name = Gulu"),
        ("name = \"and\"", "name = \"and\""),
        ("GROUP = \"12\"", "group = \"12\""),
        ("closed = TRUE", "closed = true"),
        ("properties.group = x", "properties.group = x"),
        ("properties.district = x", "district = x"),
        ("created_at>=2026-01-05", "created_at >= 2026-01-05"),
    ];
    for (input, canonical) in table {
        match CaseQuery::parse(input) {
            Ok(q) => assert_eq!(q.to_string(), canonical, "{input}"),
            Err(e) => assert!(canonical.is_empty(), "{input}: {e}"),
        }
    }
}

#[test]
fn values_bare_and_quoted() {
    let name = |v: &str| text(TextField::Name, Op::Eq, v);
    assert_eq!(parsed("name = Gulu"), name("Gulu"));
    assert_eq!(parsed("name = \"Gulu East\""), name("Gulu East"));
    assert_eq!(parsed(r#"name = "say \"hi\"""#), name(r#"say "hi""#));
    assert_eq!(parsed(r#"name = "back\\slash""#), name(r"back\slash"));
    assert_eq!(parsed(r"name = back\slash"), name(r"back\slash"));
    assert_eq!(
        parsed("name = \"(a = b) OR ~!<>\""),
        name("(a = b) OR ~!<>")
    );
    assert_eq!(parsed("name = \"and\""), name("and"));
    assert_eq!(parsed("name = Émile"), name("Émile"));
    assert_eq!(parsed("name = +256772123456"), name("+256772123456"));
    assert_eq!(parsed("name = \"line\nbreak\""), name("line\nbreak"));
    assert_eq!(parsed("name = \"\""), name(""));
    assert_eq!(parsed("name != \"\""), text(TextField::Name, Op::Ne, ""));
    // Quotes do not change what a value means for a text field.
    assert_eq!(parsed("age > \"18\""), parsed("age > 18"));
    assert_eq!(
        parsed("visit < \"2026-01-05\""),
        prop("visit", Op::Lt, "2026-01-05")
    );
    assert_eq!(parsed("score >= -2.5"), prop("score", Op::Ge, "-2.5"));
}

#[test]
fn fields() {
    let table = [
        ("case_id", TextField::CaseId),
        ("name", TextField::Name),
        ("external_id", TextField::ExternalId),
        ("phone_number", TextField::PhoneNumber),
        ("case_type", TextField::CaseType),
        ("language_code", TextField::LanguageCode),
        ("owner_id", TextField::OwnerId),
        ("Name", TextField::Name),
        ("CASE_TYPE", TextField::CaseType),
        ("district", TextField::Property("district".into())),
        ("District", TextField::Property("District".into())),
        ("hiv-status.v2", TextField::Property("hiv-status.v2".into())),
        ("properties.group", TextField::Property("group".into())),
        ("Properties.AND", TextField::Property("AND".into())),
        (
            "properties.properties.x",
            TextField::Property("properties.x".into()),
        ),
    ];
    for (word, field) in table {
        assert_eq!(
            parsed(&format!("{word} = x")),
            text(field, Op::Eq, "x"),
            "{word}"
        );
    }
    assert_eq!(
        parsed("closed = true"),
        Expr::Cond(Condition::Closed {
            op: EqOp::Eq,
            value: true
        })
    );
    assert_eq!(
        parsed("Closed != False"),
        Expr::Cond(Condition::Closed {
            op: EqOp::Ne,
            value: false
        })
    );
    assert_eq!(
        parsed("modified_at < 2026-03-01"),
        Expr::Cond(Condition::Time {
            field: TimeField::ModifiedAt,
            op: Op::Lt,
            date: date(2026, 3, 1)
        })
    );
    assert_eq!(parsed("group = 12"), group(EqOp::Eq, GroupRef::Id(12)));
    assert_eq!(parsed("group != 12"), group(EqOp::Ne, GroupRef::Id(12)));
    assert_eq!(
        parsed("group = \"12\""),
        group(EqOp::Eq, GroupRef::Name("12".into()))
    );
    assert_eq!(
        parsed("group = Gulu"),
        group(EqOp::Eq, GroupRef::Name("Gulu".into()))
    );
    assert_eq!(
        parsed("group = \" Gulu mothers \""),
        group(EqOp::Eq, GroupRef::Name("Gulu mothers".into()))
    );
    assert_eq!(
        parsed("group = -3"),
        group(EqOp::Eq, GroupRef::Name("-3".into()))
    );
}

#[test]
fn walking_the_tree() {
    let q = CaseQuery::parse(
        "group = 3 (district = Gulu OR properties.group = x) AND group != \"Arm B\" age > 1",
    )
    .expect("parses");
    let fields: Vec<String> = q.conditions().map(|c| c.field_text()).collect();
    assert_eq!(
        fields,
        ["group", "district", "properties.group", "group", "age"]
    );
    let groups: Vec<&GroupRef> = q.groups_referenced().collect();
    assert_eq!(groups, [&GroupRef::Id(3), &GroupRef::Name("Arm B".into())]);
    let props: Vec<&str> = q.properties_referenced().collect();
    assert_eq!(props, ["district", "group", "age"]);
}

#[test]
fn resolving_group_names() {
    let q = CaseQuery::parse("group = Gulu OR (group != 4 AND group = \"Arm B\")").expect("parses");
    let ids = q.try_map_groups(|g| match g {
        GroupRef::Name(n) if n == "Gulu" => Ok(GroupRef::Id(7)),
        GroupRef::Name(n) => Err(format!("no case group named '{n}'")),
        GroupRef::Id(id) => Ok(GroupRef::Id(*id)),
    });
    assert_eq!(ids, Err("no case group named 'Arm B'".to_string()));
    let ids = q
        .try_map_groups(|g| match g {
            GroupRef::Name(n) => Ok::<_, ()>(GroupRef::Id(n.len() as i64)),
            GroupRef::Id(id) => Ok(GroupRef::Id(*id)),
        })
        .expect("resolves");
    assert_eq!(ids.to_string(), "group = 4 OR group != 4 AND group = 5");
}

#[test]
fn blank_queries() {
    assert_eq!(CaseQuery::parse_optional(" \n "), Ok(None));
    assert!(matches!(CaseQuery::parse_optional("a = 1"), Ok(Some(_))));
    assert_eq!(
        CaseQuery::parse_optional("a ="),
        Err(super::super::QueryError {
            position: 4,
            message: "expected a value after '='".into()
        })
    );
}

#[test]
fn errors_name_the_position_and_what_was_expected() {
    let table = [
        ("", "at 1: expected a condition such as district = Gulu"),
        ("   ", "at 4: expected a condition such as district = Gulu"),
        ("hiv_status >=", "at 14: expected a value after '>='"),
        ("age > ", "at 7: expected a value after '>'"),
        ("age >= )", "at 8: expected a value after '>='"),
        ("age = and", "at 7: expected a value after '=' (for the word and itself, write \"and\")"),
        ("age 18", "at 5: expected an operator (=, !=, >, >=, <, <=, ~) after 'age'"),
        ("age", "at 4: expected an operator (=, !=, >, >=, <, <=, ~) after 'age'"),
        ("a = 1 b", "at 8: expected an operator (=, !=, >, >=, <, <=, ~) after 'b'"),
        ("age ! 18", "at 5: expected '=' after '!' (write != for \"is not\")"),
        ("name = \"Gulu", "at 8: a quoted value is not closed (no '\"' after it)"),
        ("name = \"Gulu\\", "at 8: a quoted value is not closed (no '\"' after it)"),
        (
            "name = \"a\\nb\"",
            "at 10: '\\n' is not an escape: inside quotes write \\\" for a quote and \\\\ for a backslash",
        ),
        ("(a = 1", "at 7: expected ')' to close the '(' at 1"),
        ("a = 1 (b = 2 OR (c = 3)", "at 24: expected ')' to close the '(' at 7"),
        ("a = 1)", "at 6: ')' has no '(' before it"),
        ("()", "at 2: expected a condition, found ')'"),
        ("a = 1 AND", "at 10: expected a condition after 'AND'"),
        ("a = 1 AND )", "at 11: expected a condition after 'AND', found ')'"),
        ("AND a = 1", "at 1: expected a condition, found 'AND'"),
        ("a = 1 OR or b = 2", "at 10: expected a condition after 'OR', found 'OR'"),
        ("a = 1 and AND b = 2", "at 11: expected a condition after 'AND', found 'AND'"),
        ("\"a\" = 1", "at 1: expected a condition, found a quoted value"),
        ("= 1", "at 1: expected a condition, found '='"),
        ("a = 1 = 2", "at 7: expected AND, OR, a condition or the end of the query, found '='"),
        ("a = 1 \"x\"", "at 7: expected AND, OR, a condition or the end of the query, found a quoted value"),
        (
            "(a = 1 = 2)",
            "at 8: expected AND, OR, a condition or ')' to close the '(' at 1, found '='",
        ),
        ("age > eighteen", "at 7: '>' needs a number or a date (YYYY-MM-DD), not 'eighteen'"),
        ("age <= \"\"", "at 8: \"\" (no value) can only follow = or !=, not '<='"),
        ("age >= 007", "at 8: '>=' needs a number or a date (YYYY-MM-DD), not '007'"),
        ("visit < \"5 May\"", "at 9: '<' needs a number or a date (YYYY-MM-DD), not \"5 May\""),
        ("name ~ \"\"", "at 8: \"\" (no value) can only follow = or !=, not '~'"),
        ("closed = maybe", "at 10: closed takes true or false, not 'maybe'"),
        ("closed > true", "at 8: closed takes = or !=, not '>'"),
        ("created_at > 2026-02-30", "at 14: created_at takes a date (YYYY-MM-DD), not '2026-02-30'"),
        ("modified_at = today", "at 15: modified_at takes a date (YYYY-MM-DD), not 'today'"),
        ("created_at ~ 2026", "at 12: created_at takes =, !=, >, >=, < or <=, not '~'"),
        ("group > 3", "at 7: group takes = or !=, not '>'"),
        ("group ~ Gulu", "at 7: group takes = or !=, not '~'"),
        ("group = \" \"", "at 9: group takes a group's id or name"),
        ("group = 99999999999999999999", "at 9: '99999999999999999999' is too large for a group id"),
        ("deleted = true", "at 1: 'deleted' cannot be queried: queries only see cases that are not deleted"),
        ("properties.deleted = x", "at 1: 'deleted' is a case field, not a property: queries only see cases that are not deleted"),
        ("properties.Name = x", "at 1: 'Name' is a case field, not a property: write name"),
        ("properties.created_at = x", "at 1: 'created_at' is a case field, not a property: write created_at"),
        ("a/b = 1", "at 1: 'a/b' is not a field: a property name has 1 to 64 letters, digits, '_', '-' or '.'"),
        ("properties. = 1", "at 1: 'properties.' is not a field: a property name has 1 to 64 letters, digits, '_', '-' or '.'"),
    ];
    for (query, expected) in table {
        assert_eq!(error(query), expected, "{query:?}");
    }
    let long_name = "x".repeat(65);
    assert!(error(&format!("{long_name} = 1")).starts_with("at 1: 'xxx"));
}

#[test]
fn length_limit() {
    let at_limit = format!("name = \"{}\"", "x".repeat(MAX_QUERY_CHARS - 9));
    assert_eq!(at_limit.chars().count(), MAX_QUERY_CHARS);
    assert!(CaseQuery::parse(&at_limit).is_ok());
    // Counted in characters, not bytes.
    let wide = format!("name = \"{}\"", "é".repeat(MAX_QUERY_CHARS - 9));
    assert!(CaseQuery::parse(&wide).is_ok());
    let over = format!("name = \"{}\"", "x".repeat(MAX_QUERY_CHARS - 8));
    assert_eq!(
        error(&over),
        "at 10001: a query may have at most 10,000 characters"
    );
}

#[test]
fn condition_limit() {
    let conditions = |n: usize| vec!["a = 1"; n].join(" ");
    let q = CaseQuery::parse(&conditions(MAX_CONDITIONS)).expect("100 conditions");
    assert_eq!(q.conditions().count(), MAX_CONDITIONS);
    // The 101st condition starts at 100 * 6 + 1.
    assert_eq!(
        error(&conditions(MAX_CONDITIONS + 1)),
        "at 601: a query may have at most 100 conditions"
    );
    assert_eq!(
        error(&vec!["a = 1"; 150].join(" OR ")),
        "at 901: a query may have at most 100 conditions"
    );
}

#[test]
fn depth_limit_without_overflowing_the_stack() {
    let nested = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(parsed(&nested(MAX_DEPTH)), prop("a", Op::Eq, "1"));
    assert_eq!(
        error(&nested(MAX_DEPTH + 1)),
        "at 33: parentheses may be nested at most 32 deep"
    );
    assert_eq!(
        error(&"(".repeat(MAX_QUERY_CHARS)),
        "at 33: parentheses may be nested at most 32 deep"
    );
    let alternating: String = (0..MAX_DEPTH + 1).map(|_| "a = 1 OR (").collect();
    assert!(error(&alternating).ends_with("parentheses may be nested at most 32 deep"));
}
