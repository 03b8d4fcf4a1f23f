//! `serve`'s bounds on the work one request may cause
//! (`wardline_core::limits`): the size of one resource and the breadth of
//! one search. The defaults are `Limits::default()`.

use clap::Args;
use wardline_core::limits::Limits;

/// Bounded work per request (issue 21).
#[derive(Args, Clone, Debug)]
pub struct LimitArgs {
    /// At most this many JSON elements (values) in one resource; more is
    /// a 422 naming where the count passed it.
    #[arg(long, env = "WARDLINE_MAX_ELEMENTS", value_name = "N",
        default_value_t = Limits::default().max_elements,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_elements: usize,
    /// At most this many repeats of one element (`Patient.name`) in a
    /// resource, and of one field (PID-5) in an HL7 v2 message.
    #[arg(long, env = "WARDLINE_MAX_REPEATS", value_name = "N",
        default_value_t = Limits::default().max_repeats,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_repeats: usize,
    /// At most this many bytes in one string of a resource (base64Binary
    /// data, e.g. an attachment, is bounded by the body limit instead).
    #[arg(long, env = "WARDLINE_MAX_STRING_BYTES", value_name = "BYTES",
        default_value_t = Limits::default().max_string_bytes,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_string_bytes: usize,
    /// At most this many parameters in one search.
    #[arg(long, env = "WARDLINE_MAX_SEARCH_PARAMS", value_name = "N",
        default_value_t = Limits::default().max_search_params,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_search_params: usize,
    /// At most this many OR (comma-separated) values of one search parameter.
    #[arg(long, env = "WARDLINE_MAX_SEARCH_OR", value_name = "N",
        default_value_t = Limits::default().max_search_or,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_search_or: usize,
    /// At most this many values of all parameters of one search (`_id` apart).
    #[arg(long, env = "WARDLINE_MAX_SEARCH_VALUES", value_name = "N",
        default_value_t = Limits::default().max_search_values,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_search_values: usize,
    /// At most this many ids named by `_id` in one search.
    #[arg(long, env = "WARDLINE_MAX_SEARCH_IDS", value_name = "N",
        default_value_t = Limits::default().max_search_ids,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_search_ids: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_elements: self.max_elements,
            max_repeats: self.max_repeats,
            max_string_bytes: self.max_string_bytes,
            max_search_params: self.max_search_params,
            max_search_or: self.max_search_or,
            max_search_values: self.max_search_values,
            max_search_ids: self.max_search_ids,
        }
    }
}
