//! The chart summary as a clinician sees it (an access that may read every
//! list): only active flags are alerts.

use std::sync::Arc;

use serde_json::json;
use wardline_core::{FhirService, ServiceConfig, Trusted};
use wardline_workflow::chart;

#[test]
fn only_active_flags_are_alerts() {
    let store = wardline_store_sqlite::SqliteStore::open_in_memory().unwrap();
    let svc = FhirService::new(Arc::new(store), ServiceConfig::default());
    let op = Trusted::operator("chart-test");
    svc.transact(&op, |tx| {
        tx.save(json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Flagg"}]}))?;
        for (id, status, text) in [
            ("f1", "active", "Violent behaviour risk"),
            ("f2", "inactive", "Old MRSA"),
        ] {
            tx.save(json!({"resourceType": "Flag", "id": id, "status": status,
                "code": {"text": text}, "subject": {"reference": "Patient/p1"}}))?;
        }
        Ok(())
    })
    .unwrap();
    let s = chart::summary(&svc, &op, "p1").unwrap();
    let texts: Vec<&str> = s.alerts.iter().map(|a| a.text.as_str()).collect();
    assert_eq!(texts, ["Violent behaviour risk"]);
    assert!(s.not_permitted.is_empty());
}
