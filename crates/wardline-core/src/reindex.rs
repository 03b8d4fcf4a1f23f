//! Keeping the search index in the format this service writes.
//!
//! What a resource's index rows are depends on the code that extracts them
//! ([`wardline_fhir::extract::INDEX_FORMAT`]) and on the trust's time zone
//! (zone-less dates are read in it). The store keeps, in its system data
//! (`index`/`format`), which format and zone built its index. A database
//! built another way — by an earlier Wardline, or in another zone — would
//! answer searches wrongly (a date of birth in summer missed by a search
//! for that day), so [`FhirService::reindex_if_needed`] rebuilds the index
//! of every current resource before the service is used; the binary runs it
//! at start-up, whatever the command.

use wardline_fhir::extract::INDEX_FORMAT;
use wardline_fhir::search::SearchQuery;
use wardline_store::{PageRequest, Reindex, Store};

use crate::search::parse_stored;
use crate::{FhirService, R};

/// Where the store keeps what built its index.
pub const INDEX_NAMESPACE: &str = "index";
pub const INDEX_KEY: &str = "format";

/// The time zone the store's index was built in, as the store recorded it;
/// `None` for a new database (or one indexed before zones were recorded).
pub fn recorded_zone(store: &dyn Store) -> R<Option<String>> {
    Ok(store
        .kv_get(INDEX_NAMESPACE, INDEX_KEY)?
        .and_then(|v| v.split_once(' ').map(|(_, zone)| zone.to_owned())))
}

/// Resources reindexed per transaction.
const BATCH: usize = 500;

impl FhirService {
    /// What this service's index rows are: `"<format> <time zone>"`.
    pub fn index_format(&self) -> String {
        format!("{INDEX_FORMAT} {}", self.config.time_zone.name())
    }

    /// Rebuilds the index of every current resource when the store's index
    /// was built in another format or time zone (or the store does not say,
    /// and holds resources), then records this service's; `progress` is
    /// told the count reindexed so far after each batch. `None` when
    /// nothing had to be rebuilt, else how many resources were. Each batch
    /// is its own transaction and a resource written meanwhile keeps the
    /// index its write gave it; if the rebuild stops half way, the format is
    /// not recorded and the next start does it again.
    pub fn reindex_if_needed(&self, progress: &mut dyn FnMut(u64)) -> R<Option<u64>> {
        let want = self.index_format();
        let have = self.store.kv_get(INDEX_NAMESPACE, INDEX_KEY)?;
        if have.as_deref() == Some(want.as_str()) {
            return Ok(None);
        }
        let all = SearchQuery::default();
        let mut page = PageRequest {
            count: BATCH,
            ..PageRequest::default()
        };
        let mut done = 0u64;
        let mut rebuilt = false;
        loop {
            let found = self.store.search(&all, &page)?;
            if found.resources.is_empty() {
                break;
            }
            rebuilt = true;
            let mut items = Vec::with_capacity(found.resources.len());
            for r in &found.resources {
                items.push(Reindex {
                    resource_type: r.resource_type.clone(),
                    id: r.id.clone(),
                    version: r.version,
                    index: self
                        .defs
                        .extract_index(&parse_stored(r)?, &self.config.time_zone),
                });
            }
            let mut tx = self.store.begin()?;
            done += tx.reindex(&items)? as u64;
            tx.commit()?;
            progress(done);
            if !found.has_more {
                break;
            }
            page.snapshot_rid = Some(found.snapshot_rid);
            page.after_rid = found.resources.last().map(|r| r.rid);
        }
        self.store.kv_put(INDEX_NAMESPACE, INDEX_KEY, &want)?;
        Ok(rebuilt.then_some(done))
    }
}
