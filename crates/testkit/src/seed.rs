//! Data for tests, written through the store's own paths: cases imported from a CSV, and a case
//! group filled by a processed upload, as the CLI and the API do.

use casecast_core::identifier::GroupName;
use casecast_core::sheet::Limits;
use casecast_engine::faults::Faults;
use casecast_store::case_groups::Actor;
use casecast_store::jobs::JobKind;
use casecast_store::membership::Change;
use casecast_store::projects::Project;
use casecast_store::Db;

/// Imports a CSV of cases (a header row first) into the project; asserts that no row was
/// refused and returns how many cases it created.
pub async fn import_cases(db: &Db, project: &Project, csv: String) -> usize {
    let report = casecast_engine::import::import_cases(
        db,
        project.id,
        project.country_code(),
        csv.into_bytes(),
        "cases.csv",
        Limits::default(),
        &|_| {},
    )
    .await
    .expect("importing the cases");
    let errors = &report.errors[..report.errors.len().min(5)];
    assert!(errors.is_empty(), "rows refused: {errors:?}");
    report.created
}

/// A new case group `name` holding these cases (by case ID), added by an upload processed here
/// (or by a worker running beside the test); returns its id.
pub async fn group_of(db: &Db, project_id: i64, name: &str, case_ids: &[String]) -> i64 {
    let actor = Actor {
        user_id: None,
        via: "page",
    };
    let group = db
        .create_group(project_id, &GroupName::parse(name).unwrap(), actor)
        .await
        .expect("creating the group");
    let mut sheet = String::from("case_id\n");
    for id in case_ids {
        sheet.push_str(id);
        sheet.push('\n');
    }
    let upload = db
        .create_upload(
            project_id,
            group.id,
            Change::Add,
            "members.csv",
            sheet.into_bytes(),
            None,
        )
        .await
        .expect("storing the upload");
    // A worker running beside the test (a `TestApp`'s) may take the job first.
    if let Some(job) = (db.claim_job_for(JobKind::Upload, upload.id, "seed").await).unwrap() {
        casecast_engine::upload::process_upload(db, upload.id, job.id, "seed", &Faults::none())
            .await
            .unwrap();
        db.finish_job(job.id).await.unwrap();
    }
    let within = std::time::Duration::from_secs(120);
    crate::eventually("the upload processed", within, || async {
        let u = db.get_upload(project_id, upload.id).await.unwrap();
        assert_ne!(u.status, casecast_core::states::JobStatus::Failed, "{u:?}");
        (u.status == casecast_core::states::JobStatus::Done).then_some(())
    })
    .await;
    let group = db.get_group(project_id, group.id).await.unwrap();
    assert_eq!(
        group.case_count,
        case_ids.len() as i64,
        "every case joined the group"
    );
    group.id
}
