//! The engine's workflows as methods of a `Db`, for tests that drive them one step at a time
//! (on the system clock, with no fault point): `use casecast_testkit::Workflows`.

use casecast_core::broadcast::Draft;
use casecast_engine::clock::SystemClock;
use casecast_engine::faults::Faults;
use casecast_engine::inbound::InboundOutcome;
use casecast_engine::{JobError, Preview};
use casecast_gateways::InboundSms;
use casecast_store::accounts::LoginOutcome;
use casecast_store::broadcasts::Broadcast;
use casecast_store::gateways::Gateway;
use casecast_store::messages::Message;
use casecast_store::projects::Project;
use casecast_store::survey_sessions::SurveySession;
use casecast_store::{Db, StoreResult};

/// The engine's workflows, called on a database handle.
#[allow(async_fn_in_trait)]
pub trait Workflows {
    /// `casecast_engine::upload::process_upload`.
    async fn process_upload(&self, upload: i64, job: i64, worker: &str) -> Result<(), JobError>;
    /// `casecast_engine::fanout::process_fanout`.
    async fn process_fanout(&self, occurrence: i64, job: i64, worker: &str)
        -> Result<(), JobError>;
    /// `casecast_engine::scheduler::fire_due_broadcasts`.
    async fn fire_due_broadcasts(&self, now: i64) -> StoreResult<usize>;
    /// `casecast_engine::broadcasts::create_broadcast`.
    async fn create_broadcast(
        &self,
        project: &Project,
        draft: &Draft,
        user_id: Option<i64>,
    ) -> StoreResult<Broadcast>;
    /// `casecast_engine::preview_broadcast`.
    async fn preview_broadcast(&self, project: &Project, draft: &Draft) -> StoreResult<Preview>;
    /// `casecast_engine::send::send_to_case`.
    async fn send_to_case(
        &self,
        project: &Project,
        case_id: &str,
        text: &str,
        user_id: Option<i64>,
        gateway_id: Option<i64>,
    ) -> StoreResult<Message>;
    /// `casecast_web::auth::log_in`.
    async fn login(&self, email: &str, password: &str, client: &str) -> StoreResult<LoginOutcome>;
    /// `casecast_engine::inbound::handle_inbound`.
    async fn record_inbound(
        &self,
        gateway: &Gateway,
        sms: &InboundSms,
    ) -> StoreResult<InboundOutcome>;
    /// `casecast_engine::surveys::start_for_case`.
    async fn start_survey(
        &self,
        project: &Project,
        survey_id: i64,
        case_id: &str,
    ) -> StoreResult<SurveySession>;
}

impl Workflows for Db {
    async fn process_upload(&self, upload: i64, job: i64, worker: &str) -> Result<(), JobError> {
        casecast_engine::upload::process_upload(self, upload, job, worker, &Faults::none()).await
    }

    async fn process_fanout(
        &self,
        occurrence: i64,
        job: i64,
        worker: &str,
    ) -> Result<(), JobError> {
        casecast_engine::fanout::process_fanout(self, occurrence, job, worker, &Faults::none())
            .await
    }

    async fn fire_due_broadcasts(&self, now: i64) -> StoreResult<usize> {
        casecast_engine::scheduler::fire_due_broadcasts(self, now).await
    }

    async fn create_broadcast(
        &self,
        project: &Project,
        draft: &Draft,
        user_id: Option<i64>,
    ) -> StoreResult<Broadcast> {
        casecast_engine::broadcasts::create_broadcast(self, &SystemClock, project, draft, user_id)
            .await
    }

    async fn preview_broadcast(&self, project: &Project, draft: &Draft) -> StoreResult<Preview> {
        casecast_engine::preview_broadcast(self, &SystemClock, project, draft).await
    }

    async fn send_to_case(
        &self,
        project: &Project,
        case_id: &str,
        text: &str,
        user_id: Option<i64>,
        gateway_id: Option<i64>,
    ) -> StoreResult<Message> {
        casecast_engine::send::send_to_case(self, project, case_id, text, user_id, gateway_id).await
    }

    async fn login(&self, email: &str, password: &str, client: &str) -> StoreResult<LoginOutcome> {
        let checking = casecast_engine::permits::Permits::password_checks()
            .acquire()
            .await;
        casecast_web::auth::log_in(self, email, password, client, checking).await
    }

    async fn record_inbound(
        &self,
        gateway: &Gateway,
        sms: &InboundSms,
    ) -> StoreResult<InboundOutcome> {
        casecast_engine::inbound::handle_inbound(self, &SystemClock, gateway, sms).await
    }

    async fn start_survey(
        &self,
        project: &Project,
        survey_id: i64,
        case_id: &str,
    ) -> StoreResult<SurveySession> {
        casecast_engine::surveys::start_for_case(
            self,
            &SystemClock,
            project,
            survey_id,
            case_id,
            None,
        )
        .await
    }
}
