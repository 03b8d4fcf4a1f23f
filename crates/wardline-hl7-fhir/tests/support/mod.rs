//! A real record for the inbound tests: a FHIR service over an in-memory
//! SQLite store. Each message is applied in one transaction (as the
//! engine does: committed when it maps, rolled back when it does not), so
//! every save is validated, indexed and searched exactly as in production,
//! and the bed and merge rules of `wardline-workflow` run for real.

#![allow(dead_code)]

use std::sync::Arc;

use serde_json::Value;
use wardline_core::{FhirService, ServiceConfig, Trusted};
use wardline_hl7::Message;
use wardline_hl7_fhir::inbound::{self, Applied};
use wardline_hl7_fhir::records::TxRecords;
use wardline_hl7_fhir::{MapError, MappingConfig, Records};

pub struct TestRecord {
    pub svc: FhirService,
    access: Trusted,
    /// The store's directory (a file store: reading an earlier version
    /// inside a write transaction, as result notification does, needs a
    /// reader beside the writer, which an in-memory store does not have).
    _dir: tempfile::TempDir,
}

impl Default for TestRecord {
    fn default() -> Self {
        TestRecord::new()
    }
}

impl TestRecord {
    pub fn new() -> TestRecord {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = wardline_store_sqlite::SqliteStore::open(&dir.path().join("wardline.db"))
            .expect("file store");
        TestRecord {
            svc: FhirService::new(Arc::new(store), ServiceConfig::default()),
            access: Trusted::operator("hl7-test"),
            _dir: dir,
        }
    }

    /// Applies a message in one transaction. A resource the mapping made
    /// that the store refuses as invalid FHIR is reported as an internal
    /// error (a bug in the mapping), not as the sender's fault.
    pub fn apply(&self, msg: &Message<'_>, cfg: &MappingConfig) -> Result<Applied, MapError> {
        let mut tx = self
            .svc
            .begin(&self.access)
            .map_err(|e| MapError::internal(e.to_string()))?;
        let out = inbound::apply(msg, &mut TxRecords::inbound(&mut tx), cfg);
        match out {
            Ok(a) => {
                tx.commit().map_err(|e| MapError::internal(e.to_string()))?;
                Ok(a)
            }
            Err(e) if e.text.starts_with("the mapped resource is not valid FHIR") => {
                Err(MapError::internal(e.text))
            }
            Err(e) => Err(e),
        }
    }

    /// Every current resource of the type, in creation order.
    pub fn all(&self, resource_type: &str) -> Vec<Value> {
        self.svc
            .transact(&self.access, |tx| tx.find(resource_type, "_count=1000"))
            .expect("search")
    }

    pub fn get(&self, resource_type: &str, id: &str) -> Option<Value> {
        self.svc
            .transact(&self.access, |tx| tx.get(resource_type, id))
            .expect("read")
    }

    pub fn count(&self, resource_type: &str) -> usize {
        self.all(resource_type).len()
    }

    /// How many resources of the types a message can write are stored.
    pub fn len(&self) -> usize {
        [
            "Patient",
            "Encounter",
            "Location",
            "Practitioner",
            "Organization",
            "ServiceRequest",
            "DiagnosticReport",
            "Observation",
            "Appointment",
            "DocumentReference",
            "Provenance",
            "Task",
        ]
        .iter()
        .map(|t| self.count(t))
        .sum()
    }
}

impl Records for TestRecord {
    fn find_by_identifier(
        &mut self,
        resource_type: &str,
        system: &str,
        value: &str,
    ) -> Result<Option<Value>, MapError> {
        self.svc
            .transact(&self.access, |tx| {
                Ok(TxRecords::reading(tx).find_by_identifier(resource_type, system, value))
            })
            .map_err(|e| MapError::internal(e.to_string()))?
    }

    fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<Value>, MapError> {
        Ok(self.get(resource_type, id))
    }

    fn save(&mut self, resource: Value) -> Result<String, MapError> {
        self.svc
            .transact(&self.access, |tx| tx.save(resource).map(|s| s.id))
            .map_err(|e| MapError::internal(e.to_string()))
    }
}
