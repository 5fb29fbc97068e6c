//! What the fuzz targets share: the panic hook, the countries and time zones they pick from,
//! and a case made from fuzzer bytes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

use arbitrary::Unstructured;
use casecast_core::case::Case;
use casecast_core::{CaseId, CountryCode, PhoneNumber};
use jiff::tz::TimeZone;

/// Puts back Rust's own panic hook. libFuzzer's aborts on every panic, also one that Casecast
/// catches on purpose (the `phonenumber` crate and calamine run under `catch_unwind`, because
/// they have panicked on odd input); with this hook, which only prints, such a panic is handled
/// as in production, and one that escapes a target still fails it (`fuzz_target!` aborts then).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| {
            // Caught panics are expected (see above): the first few are shown, in case one is
            // not caught; the run's result says which.
            static SHOWN: AtomicUsize = AtomicUsize::new(0);
            if SHOWN.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("panic (caught, unless the run stops here): {info}");
            }
        }));
    });
}

/// The input's first byte, which picks a variant (a country, a mode), and the rest as text;
/// `None` when there is no byte or the rest is not UTF-8.
pub fn pick_and_text(data: &[u8]) -> Option<(u8, &str)> {
    let (&pick, rest) = data.split_first()?;
    Some((pick, std::str::from_utf8(rest).ok()?))
}

/// Every ISO 3166 code; those `CountryCode::parse` refuses are skipped by [`country`].
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN \
BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE \
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU \
ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM \
PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS \
ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS \
YE YT ZA ZM ZW";

/// A default country picked by a byte: none for 0, else one of every country Casecast knows.
pub fn country(pick: u8) -> Option<CountryCode> {
    if pick == 0 {
        return None;
    }
    static KNOWN: OnceLock<Vec<CountryCode>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        COUNTRIES
            .split_whitespace()
            .filter_map(|c| CountryCode::parse(c).ok())
            .collect()
    });
    known.get(usize::from(pick - 1) % known.len()).cloned()
}

/// Zones with and without daylight saving time, both hemispheres, half-hour and 45-minute
/// offsets, and a zone that skipped a whole day (Pacific/Apia, 2011-12-30).
pub const ZONES: [&str; 20] = [
    "UTC",
    "Africa/Kampala",
    "Africa/Nairobi",
    "Africa/Lagos",
    "Africa/Casablanca",
    "Europe/London",
    "Europe/Berlin",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Santiago",
    "America/St_Johns",
    "America/Havana",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Apia",
];

/// A zone picked by a byte.
pub fn zone(pick: u8) -> TimeZone {
    let name = ZONES[usize::from(pick) % ZONES.len()];
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// An instant from 1990 to 2100, picked by fuzzer bytes.
pub fn instant(u: &mut Unstructured<'_>) -> arbitrary::Result<jiff::Timestamp> {
    let seconds: i64 = u.int_in_range(631_152_000..=4_102_444_800)?;
    Ok(jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// Property names the query, template and reminder targets use, so that their values meet.
pub const PROPERTIES: [&str; 6] = [
    "district",
    "age",
    "next_visit",
    "time_zone",
    "study_arm",
    "x",
];

/// A case from fuzzer bytes: values for the standard fields and a few of [`PROPERTIES`].
pub fn case(u: &mut Unstructured<'_>) -> arbitrary::Result<Case> {
    let mut properties = BTreeMap::new();
    for name in PROPERTIES {
        if u.arbitrary::<bool>()? {
            properties.insert(name.to_string(), u.arbitrary::<String>()?);
        }
    }
    let phone = u
        .arbitrary::<Option<String>>()?
        .and_then(|p| PhoneNumber::parse(&p, None).ok());
    Ok(Case {
        // Fixed, not `CaseId::new()`: a made ID holds the clock, and a finding must replay.
        case_id: CaseId::parse("fuzz-case-1").expect("a valid case ID"),
        case_type: u.arbitrary()?,
        name: u.arbitrary()?,
        external_id: u.arbitrary()?,
        phone_number: phone,
        language_code: u.arbitrary()?,
        owner_id: u.arbitrary()?,
        closed: u.arbitrary()?,
        deleted: u.arbitrary()?,
        properties,
        created_at: u.int_in_range(0..=4_102_444_800_000)?,
        modified_at: u.int_in_range(0..=4_102_444_800_000)?,
    })
}
