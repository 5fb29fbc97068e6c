//! Projects: creation, the slug's uniqueness, look-up, and a user's projects.

use casecast_core::{Email, ProjectSlug, Role, TimeZoneName};
use casecast_store::projects::NewProject;
use casecast_store::StoreError;
use casecast_testkit::{on_both_engines, Dialect, TestDb};

use crate::project;

on_both_engines!(
    create_project_stores_its_fields_and_finds_it_by_slug,
    create_project_refuses_a_taken_slug,
    create_project_refuses_a_blank_name,
    projects_of_user_lists_memberships_with_roles_by_name,
);

async fn create_project_stores_its_fields_and_finds_it_by_slug(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let created = db
        .create_project(&NewProject {
            slug: ProjectSlug::parse("gulu-study").unwrap(),
            name: "  Gulu study  ".into(),
            time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
            country: Some(casecast_core::CountryCode::parse("ug").unwrap()),
        })
        .await
        .unwrap();
    assert_eq!(created.slug, "gulu-study");
    assert_eq!(created.name, "Gulu study", "the name is trimmed");
    assert_eq!(created.time_zone, "Africa/Kampala");
    assert_eq!(created.country.as_deref(), Some("UG"));
    assert_eq!(created.country_code().unwrap().as_str(), "UG");
    assert!(created.created_at > 0);

    let found = db.project_by_slug("gulu-study").await.unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(found.name, "Gulu study");
    assert_eq!(found.country.as_deref(), Some("UG"));

    let without_country = project(db, "no-country", None).await;
    assert_eq!(without_country.country, None);
    assert!(without_country.country_code().is_none());
    assert_ne!(without_country.id, created.id);

    assert!(matches!(
        db.project_by_slug("missing").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn create_project_refuses_a_taken_slug(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let first = project(db, "demo", Some("UG")).await;
    let again = db
        .create_project(&NewProject {
            slug: ProjectSlug::parse("demo").unwrap(),
            name: "Another".into(),
            time_zone: TimeZoneName::parse("Africa/Nairobi").unwrap(),
            country: None,
        })
        .await;
    match again {
        Err(StoreError::Conflict { code, message }) => {
            assert_eq!(code, "project_taken");
            assert!(message.contains("demo"), "{message}");
        }
        other => panic!("expected project_taken, got {other:?}"),
    }
    let kept = db.project_by_slug("demo").await.unwrap();
    assert_eq!(
        (kept.id, kept.name.as_str()),
        (first.id, "Project demo"),
        "the first project is untouched"
    );
}

async fn create_project_refuses_a_blank_name(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    for name in ["", "   ", &"x".repeat(256)] {
        let result = db
            .create_project(&NewProject {
                slug: ProjectSlug::parse("blank").unwrap(),
                name: name.to_string(),
                time_zone: TimeZoneName::parse("UTC").unwrap(),
                country: None,
            })
            .await;
        match result {
            Err(StoreError::Invalid(e)) => assert_eq!(e.field, "name"),
            other => panic!("expected an invalid name for {name:?}, got {other:?}"),
        }
    }
    assert!(matches!(
        db.project_by_slug("blank").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn projects_of_user_lists_memberships_with_roles_by_name(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    // Slugs sort the other way round from names, so the order shows which one is used.
    let named = |slug: &str, name: &str| NewProject {
        slug: ProjectSlug::parse(slug).unwrap(),
        name: name.into(),
        time_zone: TimeZoneName::parse("UTC").unwrap(),
        country: None,
    };
    let zulu = db.create_project(&named("a-zulu", "Zulu")).await.unwrap();
    let alpha = db.create_project(&named("z-alpha", "Alpha")).await.unwrap();
    let other = project(db, "other", None).await;
    let email = Email::parse("nurse@example.org").unwrap();
    let user = db
        .upsert_user(&email, "pw-one", zulu.id, Role::Viewer)
        .await
        .unwrap();
    db.upsert_user(&email, "pw-one", alpha.id, Role::Admin)
        .await
        .unwrap();
    let outsider = db
        .upsert_user(
            &Email::parse("x@example.org").unwrap(),
            "pw",
            other.id,
            Role::Editor,
        )
        .await
        .unwrap();

    let listed: Vec<(String, String)> = db
        .projects_of_user(user.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(p, role)| (p.slug, role))
        .collect();
    assert_eq!(
        listed,
        [
            ("z-alpha".to_string(), "admin".to_string()),
            ("a-zulu".to_string(), "viewer".to_string())
        ]
    );
    assert_eq!(
        db.projects_of_user(outsider.id).await.unwrap().len(),
        1,
        "another user's memberships are not mixed in"
    );
    assert!(db.projects_of_user(9_999_999).await.unwrap().is_empty());
}
