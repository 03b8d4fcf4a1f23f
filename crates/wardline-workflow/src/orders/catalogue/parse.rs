//! Reading and writing the catalogue's FHIR resources (see the parent
//! module for the shapes).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;
use crate::fhir::{UCUM, concept_text};

// ---- parsing ---------------------------------------------------------------

pub(super) fn ext<'a>(r: &'a Value, url: &str) -> Option<&'a Value> {
    r["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"].as_str() == Some(url))
}

fn text_of(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Whether `id` is a FHIR id usable as a catalogue slug.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

fn coded(c: &Value, what: &str) -> Result<(), String> {
    let coding = &c["coding"][0];
    if coding["system"].as_str().is_none_or(str::is_empty)
        || coding["code"].as_str().is_none_or(|s| s.trim().is_empty())
    {
        return Err(format!("{what} needs a coding with a system and a code"));
    }
    Ok(())
}

fn quantity_value(q: &Value) -> Option<f64> {
    q["value"].as_f64()
}

fn duration_hours(d: &Value) -> Result<u32, String> {
    let v = d["value"]
        .as_f64()
        .filter(|v| *v > 0.0 && v.is_finite())
        .ok_or("the minimum retest interval needs a positive value")?;
    let unit = d["code"].as_str().or(d["unit"].as_str()).unwrap_or("");
    let hours = match unit {
        "h" => v,
        "d" => v * 24.0,
        "wk" => v * 24.0 * 7.0,
        other => {
            return Err(format!(
                "the minimum retest interval's unit \"{other}\" is not h, d or wk"
            ));
        }
    };
    if hours > f64::from(u32::MAX) || hours.fract() != 0.0 {
        return Err("the minimum retest interval must be a whole number of hours".to_owned());
    }
    // Checked above: a whole number within u32.
    Ok(hours as u32)
}

/// Reads a Questionnaire of the catalogue, or says what is wrong.
pub fn parse_questionnaire(q: &Value) -> Result<Questionnaire, String> {
    if q["resourceType"] != "Questionnaire" {
        return Err("not a Questionnaire".to_owned());
    }
    let id = q["id"].as_str().unwrap_or_default().to_owned();
    let url = text_of(&q["url"]).ok_or("a catalogue questionnaire needs a url")?;
    let mut items = Vec::new();
    for (i, it) in q["item"].as_array().into_iter().flatten().enumerate() {
        let link_id = text_of(&it["linkId"]).ok_or(format!("item {} has no linkId", i + 1))?;
        let kind = it["type"].as_str().unwrap_or_default().to_owned();
        if !matches!(
            kind.as_str(),
            "string" | "boolean" | "decimal" | "choice" | "text" | "integer"
        ) {
            return Err(format!(
                "question {link_id} has type \"{kind}\": a catalogue question is string, text, boolean, decimal, integer or choice"
            ));
        }
        let options: Vec<(String, String)> = it["answerOption"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| {
                let c = &o["valueCoding"];
                let code = c["code"].as_str()?;
                Some((
                    code.to_owned(),
                    c["display"].as_str().unwrap_or(code).to_owned(),
                ))
            })
            .collect();
        if kind == "choice" && options.is_empty() {
            return Err(format!(
                "question {link_id} is a choice without answer options"
            ));
        }
        items.push(Question {
            text: text_of(&it["text"]).unwrap_or_else(|| link_id.clone()),
            link_id,
            kind,
            required: it["required"].as_bool().unwrap_or(false),
            options,
        });
    }
    if items.is_empty() {
        return Err("the questionnaire has no questions".to_owned());
    }
    Ok(Questionnaire {
        url,
        items,
        title: text_of(&q["title"]).unwrap_or_else(|| id.clone()),
        id,
    })
}

fn contained<'a>(r: &'a Value, reference: &Value) -> Option<&'a Value> {
    let local = reference["reference"].as_str()?.strip_prefix('#')?;
    r["contained"]
        .as_array()?
        .iter()
        .find(|c| c["id"].as_str() == Some(local))
}

fn parse_specimen(sd: &Value) -> Result<SpecimenRequirement, String> {
    if sd["resourceType"] != "SpecimenDefinition" {
        return Err("specimenRequirement must point at a contained SpecimenDefinition".to_owned());
    }
    let t = &sd["typeCollected"];
    coded(t, "the specimen type (typeCollected)")?;
    let c = &sd["typeTested"][0]["container"];
    let container = concept_text(&c["type"])
        .filter(|s| !s.trim().is_empty())
        .ok_or("the specimen needs its container (typeTested[0].container.type.text)")?;
    let minimum_volume_ml = match c.get("minimumVolumeQuantity") {
        Some(q) => {
            let v = quantity_value(q)
                .filter(|v| *v > 0.0)
                .ok_or("the minimum volume must be a positive quantity")?;
            if q["code"].as_str().is_some_and(|u| u != "mL") {
                return Err("the minimum volume must be in mL".to_owned());
            }
            Some(v)
        }
        None => None,
    };
    Ok(SpecimenRequirement {
        specimen_type: t.clone(),
        container,
        colour: concept_text(&c["cap"]),
        minimum_volume_ml,
    })
}

fn range_bounds(r: &Value) -> (Option<f64>, Option<f64>) {
    (r["low"]["value"].as_f64(), r["high"]["value"].as_f64())
}

pub(super) fn parse_analyte(od: &Value) -> Result<Analyte, String> {
    if od["resourceType"] != "ObservationDefinition" {
        return Err(
            "observationResultRequirement must point at a contained ObservationDefinition"
                .to_owned(),
        );
    }
    let code = od["code"].clone();
    let display = text_of(&od["preferredReportName"])
        .or_else(|| concept_text(&code))
        .unwrap_or_default();
    let name = if display.is_empty() {
        "an analyte".to_owned()
    } else {
        format!("analyte {display}")
    };
    coded(&code, &format!("{name}'s code"))?;
    let unit_c = &od["quantitativeDetails"]["unit"];
    let unit = unit_c["coding"][0]["code"]
        .as_str()
        .or(unit_c["text"].as_str())
        .map(str::to_owned);
    let mut a = Analyte {
        code,
        display,
        unit,
        low: None,
        high: None,
        critical_low: None,
        critical_high: None,
        delta_absolute: None,
        delta_percent: None,
        sex_ranges: Vec::new(),
    };
    let mut general = false;
    for qi in od["qualifiedInterval"].as_array().into_iter().flatten() {
        let (lo, hi) = range_bounds(&qi["range"]);
        if let (Some(l), Some(h)) = (lo, hi)
            && l > h
        {
            return Err(format!(
                "{name} has a {} range whose low ({}) is above its high ({})",
                qi["category"].as_str().unwrap_or("reference"),
                num(l),
                num(h)
            ));
        }
        match (qi["category"].as_str(), qi["gender"].as_str()) {
            (Some("critical"), None) => {
                if a.critical_low.is_some() || a.critical_high.is_some() {
                    return Err(format!("{name} has more than one critical range"));
                }
                a.critical_low = lo;
                a.critical_high = hi;
            }
            (Some("critical"), Some(_)) => {
                return Err(format!(
                    "{name}'s critical range depends on sex: critical limits apply to everyone"
                ));
            }
            (Some("reference") | None, None) => {
                if general {
                    return Err(format!("{name} has more than one reference range"));
                }
                general = true;
                a.low = lo;
                a.high = hi;
            }
            (Some("reference") | None, Some(g)) => {
                if !matches!(g, "male" | "female") {
                    return Err(format!(
                        "{name} has a range for \"{g}\": use male or female"
                    ));
                }
                if a.sex_ranges.iter().any(|r| r.gender == g) {
                    return Err(format!("{name} has two {g} ranges"));
                }
                a.sex_ranges.push(SexRange {
                    gender: g.to_owned(),
                    low: lo,
                    high: hi,
                });
            }
            (Some(other), _) => {
                if other != "absolute" {
                    return Err(format!(
                        "{name} has a range of unknown category \"{other}\""
                    ));
                }
            }
        }
    }
    if !general && !a.sex_ranges.is_empty() {
        // The widest of the sexes' ranges (see the module documentation).
        a.low = a
            .sex_ranges
            .iter()
            .map(|r| r.low)
            .try_fold(f64::INFINITY, |m, l| l.map(|l| m.min(l)));
        a.high = a
            .sex_ranges
            .iter()
            .map(|r| r.high)
            .try_fold(f64::NEG_INFINITY, |m, h| h.map(|h| m.max(h)));
    }
    let ranges =
        std::iter::once((a.low, a.high)).chain(a.sex_ranges.iter().map(|r| (r.low, r.high)));
    for (lo, hi) in ranges {
        if let (Some(c), Some(l)) = (a.critical_low, lo.or(hi))
            && c > l
        {
            return Err(format!(
                "{name}'s critical low ({}) is inside its reference range (from {})",
                num(c),
                num(l)
            ));
        }
        if let (Some(c), Some(h)) = (a.critical_high, hi.or(lo))
            && c < h
        {
            return Err(format!(
                "{name}'s critical high ({}) is inside its reference range (up to {})",
                num(c),
                num(h)
            ));
        }
    }
    if let Some(d) = ext(od, DELTA_CHECK) {
        let sub = |u: &str| {
            d["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["url"].as_str() == Some(u))
        };
        a.delta_absolute = sub("absolute")
            .map(|e| &e["valueQuantity"])
            .or(d.get("valueQuantity"))
            .and_then(quantity_value);
        a.delta_percent = sub("percent").and_then(|e| e["valueDecimal"].as_f64());
        if a.delta_absolute.is_none() && a.delta_percent.is_none() {
            return Err(format!(
                "{name}'s delta check needs an absolute (valueQuantity) or percent (valueDecimal) limit"
            ));
        }
        if a.delta_absolute.is_some_and(|v| v <= 0.0) || a.delta_percent.is_some_and(|v| v <= 0.0) {
            return Err(format!("{name}'s delta check limits must be positive"));
        }
    }
    Ok(a)
}

/// Reads an orderable (`ActivityDefinition`), or says what is wrong.
/// `questionnaires` resolves its questionnaire canonical (by url).
pub fn parse_orderable(
    ad: &Value,
    questionnaires: &HashMap<String, Questionnaire>,
) -> Result<Orderable, String> {
    if ad["resourceType"] != "ActivityDefinition" {
        return Err("not an ActivityDefinition".to_owned());
    }
    let id = ad["id"].as_str().unwrap_or_default().to_owned();
    if !valid_id(&id) {
        return Err(format!(
            "the id \"{id}\" is not a catalogue id (letters, digits and hyphens, up to 64)"
        ));
    }
    let url = text_of(&ad["url"]).ok_or("an orderable needs a url")?;
    if ad["kind"] != "ServiceRequest" {
        return Err("an orderable's kind must be ServiceRequest".to_owned());
    }
    let active = match ad["status"].as_str() {
        Some("active") => true,
        Some("retired") => false,
        other => {
            return Err(format!(
                "an orderable's status must be active or retired, not {}",
                other.unwrap_or("missing")
            ));
        }
    };
    let title = text_of(&ad["title"]).ok_or("an orderable needs a title")?;
    let code = ad["code"].clone();
    coded(&code, "the orderable's code")?;
    let local_code = code["coding"][0]["system"] == LOCAL_ORDERABLE;
    let department = ad["topic"][0]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["system"] == DEPARTMENT)
        .and_then(|c| c["code"].as_str())
        .ok_or("an orderable needs its department (topic[0], system order-department)")?
        .to_owned();
    if !DEPARTMENTS.iter().any(|(c, _)| *c == department) {
        return Err(format!("\"{department}\" is not a department"));
    }
    let imaging = department == "radiology";
    let modality =
        ext(ad, MODALITY).and_then(|e| e["valueCoding"]["code"].as_str().map(str::to_owned));
    if imaging && modality.is_none() {
        return Err(
            "a radiology examination needs its modality (extension imaging-modality)".to_owned(),
        );
    }
    let ionising = ext(ad, IONISING)
        .and_then(|e| e["valueBoolean"].as_bool())
        .unwrap_or(false);
    if ionising && !imaging {
        return Err("only a radiology examination can be marked ionising".to_owned());
    }
    let specimen = match ad["specimenRequirement"].as_array().and_then(|s| s.first()) {
        Some(r) => Some(parse_specimen(contained(ad, r).ok_or(
            "specimenRequirement[0] must point at a contained SpecimenDefinition (#id)",
        )?)?),
        None => None,
    };
    if !imaging && specimen.is_none() {
        return Err("a pathology test needs its specimen (specimenRequirement)".to_owned());
    }
    let sd = ad["specimenRequirement"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(|r| contained(ad, r));
    let preparation = sd.and_then(|s| {
        s["patientPreparation"]
            .as_array()?
            .iter()
            .filter_map(concept_text)
            .reduce(|a, b| format!("{a} {b}"))
    });
    let timing = sd.and_then(|s| text_of(&s["timeAspect"]));
    let retest_interval_hours = ext(ad, RETEST_INTERVAL)
        .map(|e| duration_hours(&e["valueDuration"]))
        .transpose()?;
    let questionnaire = match ext(ad, QUESTIONNAIRE) {
        Some(e) => {
            let url = e["valueCanonical"]
                .as_str()
                .ok_or("the order-questionnaire extension needs a valueCanonical")?;
            Some(
                questionnaires
                    .get(url.split('|').next().unwrap_or(url))
                    .cloned()
                    .ok_or(format!("the questionnaire {url} does not exist"))?,
            )
        }
        None => None,
    };
    let mut analytes: Vec<Analyte> = Vec::new();
    for (i, r) in ad["observationResultRequirement"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let od = contained(ad, r).ok_or(format!(
            "observationResultRequirement[{i}] must point at a contained ObservationDefinition (#id)"
        ))?;
        let a = parse_analyte(od)?;
        if analytes.iter().any(|b| b.token() == a.token()) {
            return Err(format!("analyte {} is listed twice", a.display));
        }
        analytes.push(a);
    }
    Ok(Orderable {
        id,
        url,
        title,
        code,
        local_code,
        department,
        imaging,
        modality,
        ionising,
        specimen,
        preparation,
        timing,
        retest_interval_hours,
        questionnaire,
        analytes,
        active,
        description: text_of(&ad["description"]),
    })
}

/// Reads an order set (`PlanDefinition`), or says what is wrong.
/// `orderable_id` resolves an action's canonical to an orderable id.
pub fn parse_order_set(
    pd: &Value,
    orderable_id: &dyn Fn(&str) -> Option<String>,
) -> Result<OrderSet, String> {
    if pd["resourceType"] != "PlanDefinition" {
        return Err("not a PlanDefinition".to_owned());
    }
    let id = pd["id"].as_str().unwrap_or_default().to_owned();
    if !valid_id(&id) {
        return Err(format!("the id \"{id}\" is not a catalogue id"));
    }
    let url = text_of(&pd["url"]).ok_or("an order set needs a url")?;
    let title = text_of(&pd["title"]).ok_or("an order set needs a title")?;
    if !pd["type"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["code"] == "order-set")
    {
        return Err("an order set's type must be order-set".to_owned());
    }
    let active = match pd["status"].as_str() {
        Some("active") => true,
        Some("retired") => false,
        other => {
            return Err(format!(
                "an order set's status must be active or retired, not {}",
                other.unwrap_or("missing")
            ));
        }
    };
    let mut orderables = Vec::new();
    for (i, a) in pd["action"].as_array().into_iter().flatten().enumerate() {
        let c = a["definitionCanonical"]
            .as_str()
            .ok_or(format!("action[{i}] needs a definitionCanonical"))?;
        let id = orderable_id(c.split('|').next().unwrap_or(c)).ok_or(format!(
            "action[{i}] names {c}, which is not in the catalogue"
        ))?;
        if !orderables.contains(&id) {
            orderables.push(id);
        }
    }
    if orderables.is_empty() {
        return Err("an order set needs at least one test or examination".to_owned());
    }
    Ok(OrderSet {
        id,
        url,
        title,
        orderables,
        active,
        description: text_of(&pd["description"]),
    })
}

// ---- writing -----------------------------------------------------------------

fn quantity(v: f64, unit: Option<&str>) -> Value {
    let mut q = json!({"value": v});
    if let Some(u) = unit {
        q["unit"] = json!(u);
        q["system"] = json!(UCUM);
        q["code"] = json!(u);
    }
    q
}

fn range_json(low: Option<f64>, high: Option<f64>, unit: Option<&str>) -> Value {
    let mut r = json!({});
    if let Some(l) = low {
        r["low"] = quantity(l, unit);
    }
    if let Some(h) = high {
        r["high"] = quantity(h, unit);
    }
    r
}

impl Analyte {
    /// The contained `ObservationDefinition` (with local id `id`).
    pub fn to_resource(&self, id: &str) -> Value {
        let unit = self.unit.as_deref();
        let mut od = json!({
            "resourceType": "ObservationDefinition",
            "id": id,
            "code": self.code,
            "permittedDataType": ["Quantity"],
            "preferredReportName": self.display,
        });
        if let Some(u) = unit {
            let mut unit = json!({"coding": [{"system": UCUM, "code": u}]});
            let print = crate::fhir::ucum_print(u);
            if !print.is_empty() {
                unit["text"] = json!(print);
            }
            od["quantitativeDetails"] = json!({ "unit": unit });
        }
        let mut intervals = Vec::new();
        if self.sex_ranges.is_empty() && (self.low.is_some() || self.high.is_some()) {
            intervals.push(
                json!({"category": "reference", "range": range_json(self.low, self.high, unit)}),
            );
        }
        for r in &self.sex_ranges {
            intervals.push(json!({"category": "reference", "gender": r.gender, "range": range_json(r.low, r.high, unit)}));
        }
        if self.critical_low.is_some() || self.critical_high.is_some() {
            intervals.push(json!({"category": "critical", "range": range_json(self.critical_low, self.critical_high, unit)}));
        }
        if !intervals.is_empty() {
            od["qualifiedInterval"] = json!(intervals);
        }
        let mut delta = Vec::new();
        if let Some(d) = self.delta_absolute {
            delta.push(json!({"url": "absolute", "valueQuantity": quantity(d, unit)}));
        }
        if let Some(p) = self.delta_percent {
            delta.push(json!({"url": "percent", "valueDecimal": p}));
        }
        if !delta.is_empty() {
            od["extension"] = json!([{"url": DELTA_CHECK, "extension": delta}]);
        }
        od
    }
}

fn set_ext(r: &mut Value, url: &str, value: Option<Value>) {
    let mut exts: Vec<Value> = r["extension"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["url"] != url)
        .collect();
    if let Some(v) = value {
        let mut e = json!({"url": url});
        if let (Some(m), Some(vm)) = (e.as_object_mut(), v.as_object()) {
            for (k, x) in vm {
                m.insert(k.clone(), x.clone());
            }
        }
        exts.push(e);
    }
    if let Some(m) = r.as_object_mut() {
        if exts.is_empty() {
            m.remove("extension");
        } else {
            m.insert("extension".to_owned(), json!(exts));
        }
    }
}

impl Orderable {
    /// The `ActivityDefinition` of this orderable. With `base` (the stored
    /// resource) the elements the catalogue does not model are kept.
    pub fn to_resource(&self, base: Option<&Value>) -> Value {
        let mut ad = base.cloned().unwrap_or_else(|| json!({}));
        if let Some(m) = ad.as_object_mut() {
            for k in [
                "meta",
                "text",
                "contained",
                "specimenRequirement",
                "observationResultRequirement",
                "description",
            ] {
                m.remove(k);
            }
        }
        ad["resourceType"] = json!("ActivityDefinition");
        ad["id"] = json!(self.id);
        ad["url"] = json!(self.url);
        ad["name"] = json!(self.id.replace(['-', '.'], "_"));
        ad["title"] = json!(self.title);
        ad["status"] = json!(if self.active { "active" } else { "retired" });
        ad["kind"] = json!("ServiceRequest");
        ad["code"] = self.code.clone();
        ad["topic"] = json!([{"coding": [{"system": DEPARTMENT, "code": self.department, "display": department_name(&self.department)}]}]);
        if let Some(d) = &self.description {
            ad["description"] = json!(d);
        }
        let mut contained = Vec::new();
        if let Some(s) = &self.specimen {
            let mut container = json!({"type": {"text": s.container}});
            if let Some(c) = &s.colour {
                container["cap"] = json!({"text": c});
            }
            if let Some(v) = s.minimum_volume_ml {
                container["minimumVolumeQuantity"] = quantity(v, Some("mL"));
            }
            let mut sd = json!({
                "resourceType": "SpecimenDefinition",
                "id": "specimen",
                "typeCollected": s.specimen_type,
                "typeTested": [{"preference": "preferred", "container": container}],
            });
            if let Some(p) = &self.preparation {
                sd["patientPreparation"] = json!([{"text": p}]);
            }
            if let Some(t) = &self.timing {
                sd["timeAspect"] = json!(t);
            }
            contained.push(sd);
            ad["specimenRequirement"] = json!([{"reference": "#specimen"}]);
        }
        let mut results = Vec::new();
        for (i, a) in self.analytes.iter().enumerate() {
            let id = format!("analyte-{}", i + 1);
            contained.push(a.to_resource(&id));
            results.push(json!({"reference": format!("#{id}")}));
        }
        if !results.is_empty() {
            ad["observationResultRequirement"] = json!(results);
        }
        if !contained.is_empty() {
            ad["contained"] = json!(contained);
        }
        set_ext(
            &mut ad,
            MODALITY,
            self.modality.as_ref().map(|m| {
                let display = MODALITIES.iter().find(|(c, _)| c == m).map(|(_, d)| *d);
                let mut c = json!({"system": DICOM, "code": m});
                if let Some(d) = display {
                    c["display"] = json!(d);
                }
                json!({"valueCoding": c})
            }),
        );
        set_ext(
            &mut ad,
            IONISING,
            self.imaging.then(|| json!({"valueBoolean": self.ionising})),
        );
        set_ext(
            &mut ad,
            RETEST_INTERVAL,
            self.retest_interval_hours.map(|h| {
                if h % 24 == 0 {
                    json!({"valueDuration": {"value": h / 24, "unit": "d", "system": UCUM, "code": "d"}})
                } else {
                    json!({"valueDuration": {"value": h, "unit": "h", "system": UCUM, "code": "h"}})
                }
            }),
        );
        set_ext(
            &mut ad,
            QUESTIONNAIRE,
            self.questionnaire
                .as_ref()
                .map(|q| json!({"valueCanonical": q.url})),
        );
        ad
    }
}

impl OrderSet {
    /// The `PlanDefinition` of this order set; `url_of` gives an
    /// orderable's url from its id.
    pub fn to_resource(
        &self,
        base: Option<&Value>,
        url_of: &dyn Fn(&str) -> Option<String>,
    ) -> Value {
        let mut pd = base.cloned().unwrap_or_else(|| json!({}));
        if let Some(m) = pd.as_object_mut() {
            m.remove("meta");
            m.remove("text");
            m.remove("description");
        }
        pd["resourceType"] = json!("PlanDefinition");
        pd["id"] = json!(self.id);
        pd["url"] = json!(self.url);
        pd["name"] = json!(self.id.replace(['-', '.'], "_"));
        pd["title"] = json!(self.title);
        pd["type"] =
            json!({"coding": [{"system": PLAN_TYPE, "code": "order-set", "display": "Order Set"}]});
        pd["status"] = json!(if self.active { "active" } else { "retired" });
        if let Some(d) = &self.description {
            pd["description"] = json!(d);
        }
        pd["action"] = json!(
            self.orderables
                .iter()
                .map(|id| json!({"definitionCanonical": url_of(id).unwrap_or_else(|| format!("{BASE}/ActivityDefinition/{id}"))}))
                .collect::<Vec<_>>()
        );
        pd
    }
}
