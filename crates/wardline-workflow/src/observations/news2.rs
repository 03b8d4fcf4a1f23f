//! The one home of the National Early Warning Score 2 (NEWS2).
//!
//! Source: Royal College of Physicians, *National Early Warning Score (NEWS)
//! 2: Standardising the assessment of acute-illness severity in the NHS*
//! (December 2017), "Chart 1: The NEWS scoring system", and its thresholds
//! and triggers (chart 2). Every band below is the chart's:
//!
//! | Parameter | 3 | 2 | 1 | 0 | 1 | 2 | 3 |
//! |---|---|---|---|---|---|---|---|
//! | Respiration rate (/min) | ≤8 | | 9–11 | 12–20 | | 21–24 | ≥25 |
//! | SpO₂ scale 1 (%) | ≤91 | 92–93 | 94–95 | ≥96 | | | |
//! | SpO₂ scale 2 (%) | ≤83 | 84–85 | 86–87 | 88–92, ≥93 on air | 93–94 on O₂ | 95–96 on O₂ | ≥97 on O₂ |
//! | Air or oxygen | | Oxygen | | Air | | | |
//! | Systolic BP (mmHg) | ≤90 | 91–100 | 101–110 | 111–219 | | | ≥220 |
//! | Pulse (/min) | ≤40 | | 41–50 | 51–90 | 91–110 | 111–130 | ≥131 |
//! | Consciousness | | | | Alert | | | CVPU (new confusion included) |
//! | Temperature (°C) | ≤35.0 | | 35.1–36.0 | 36.1–38.0 | 38.1–39.0 | ≥39.1 | |
//!
//! Scale 2 is used only for a patient a clinician has recorded as having
//! confirmed hypercapnic respiratory failure (target 88–92 %); for
//! everybody else scale 1.
//!
//! The chart's bands are whole numbers (temperature: tenths). A reading
//! between them is rounded first, half away from zero, to the chart's
//! precision (37.95 °C → 38.0 → 0; 90.5 mmHg → 91 → 2): the device's
//! extra digits never fall in a gap between bands.
//!
//! Response (chart 2): aggregate 0–4 low (a 3 in any single parameter:
//! low–medium, urgent ward-based response), 5–6 medium (urgent response),
//! 7 or more high (emergency response).
//!
//! A set missing some parameters still gets the sum of those present,
//! marked incomplete: every missing parameter scores ≥ 0, so the true
//! aggregate is at least that sum and a response it triggers is never
//! too high; it may be too low, which is why the chart shows the set as
//! incomplete and the ward form requires every parameter.

use serde::Serialize;

/// The SpO₂ scale in use for a patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scale {
    /// Everybody not recorded as in hypercapnic respiratory failure.
    One,
    /// Confirmed hypercapnic respiratory failure, recorded by a clinician.
    Two,
}

/// Level of consciousness on the ACVPU scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Acvpu {
    Alert,
    /// New confusion (or new disorientation, agitation).
    Confusion,
    Voice,
    Pain,
    Unresponsive,
}

impl Acvpu {
    pub fn code(self) -> &'static str {
        match self {
            Acvpu::Alert => "A",
            Acvpu::Confusion => "C",
            Acvpu::Voice => "V",
            Acvpu::Pain => "P",
            Acvpu::Unresponsive => "U",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Acvpu::Alert => "Alert",
            Acvpu::Confusion => "New confusion",
            Acvpu::Voice => "Responds to voice",
            Acvpu::Pain => "Responds to pain",
            Acvpu::Unresponsive => "Unresponsive",
        }
    }

    pub fn from_code(c: &str) -> Option<Acvpu> {
        Some(match c {
            "A" => Acvpu::Alert,
            "C" => Acvpu::Confusion,
            "V" => Acvpu::Voice,
            "P" => Acvpu::Pain,
            "U" => Acvpu::Unresponsive,
            _ => return None,
        })
    }

    pub const ALL: [Acvpu; 5] = [
        Acvpu::Alert,
        Acvpu::Confusion,
        Acvpu::Voice,
        Acvpu::Pain,
        Acvpu::Unresponsive,
    ];
}

/// One set of readings (a `None` is a parameter not measured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Vitals {
    pub respiration_rate: Option<f64>,
    pub spo2: Option<f64>,
    /// `true`: on supplemental oxygen; `false`: on air.
    pub oxygen: Option<bool>,
    pub systolic_bp: Option<f64>,
    pub pulse: Option<f64>,
    pub consciousness: Option<Acvpu>,
    pub temperature: Option<f64>,
}

/// The seven scored parameters, in the chart's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Parameter {
    RespirationRate,
    Spo2,
    AirOrOxygen,
    SystolicBp,
    Pulse,
    Consciousness,
    Temperature,
}

impl Parameter {
    pub const ALL: [Parameter; 7] = [
        Parameter::RespirationRate,
        Parameter::Spo2,
        Parameter::AirOrOxygen,
        Parameter::SystolicBp,
        Parameter::Pulse,
        Parameter::Consciousness,
        Parameter::Temperature,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Parameter::RespirationRate => "Respiration rate",
            Parameter::Spo2 => "SpO₂",
            Parameter::AirOrOxygen => "Air or oxygen",
            Parameter::SystolicBp => "Systolic blood pressure",
            Parameter::Pulse => "Pulse",
            Parameter::Consciousness => "Consciousness",
            Parameter::Temperature => "Temperature",
        }
    }
}

/// The clinical response the chart asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Response {
    /// Aggregate 0–4, no single 3: ward-based response.
    Low,
    /// A 3 in any single parameter (aggregate ≤ 4): urgent ward-based response.
    UrgentWard,
    /// Aggregate 5–6: urgent response.
    Urgent,
    /// Aggregate 7 or more: emergency response.
    Emergency,
}

impl Response {
    pub fn code(self) -> &'static str {
        match self {
            Response::Low => "low",
            Response::UrgentWard => "urgent-ward",
            Response::Urgent => "urgent",
            Response::Emergency => "emergency",
        }
    }

    pub fn from_code(c: &str) -> Option<Response> {
        Some(match c {
            "low" => Response::Low,
            "urgent-ward" => Response::UrgentWard,
            "urgent" => Response::Urgent,
            "emergency" => Response::Emergency,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Response::Low => "Low: ward-based response",
            Response::UrgentWard => "Single parameter 3: urgent ward-based response",
            Response::Urgent => "Medium (5–6): urgent response",
            Response::Emergency => "High (7+): emergency response",
        }
    }

    /// The FHIR `Task.priority` of an escalation at this level (`None`:
    /// no escalation).
    pub fn task_priority(self) -> Option<&'static str> {
        match self {
            Response::Low => None,
            Response::UrgentWard | Response::Urgent => Some("urgent"),
            Response::Emergency => Some("stat"),
        }
    }
}

/// A set's NEWS2.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct News2 {
    pub scale: Scale,
    /// Each parameter present with its score (0–3), in the chart's order.
    pub parts: Vec<(Parameter, u8)>,
    pub total: u8,
    /// Whether all seven parameters were present.
    pub complete: bool,
    pub response: Response,
}

impl News2 {
    pub fn part(&self, p: Parameter) -> Option<u8> {
        self.parts.iter().find(|(q, _)| *q == p).map(|(_, s)| *s)
    }

    pub fn missing(&self) -> Vec<Parameter> {
        Parameter::ALL
            .into_iter()
            .filter(|p| self.part(*p).is_none())
            .collect()
    }
}

fn whole(v: f64) -> i64 {
    v.round() as i64
}

fn tenths(v: f64) -> i64 {
    (v * 10.0).round() as i64
}

pub fn respiration_rate(v: f64) -> u8 {
    match whole(v) {
        ..=8 => 3,
        9..=11 => 1,
        12..=20 => 0,
        21..=24 => 2,
        _ => 3,
    }
}

/// SpO₂ on `scale`; `oxygen` is whether the patient is on supplemental
/// oxygen (which only scale 2 reads: its ≥ 93 % band depends on it; an
/// unknown `oxygen` there counts as air, the lower score, and the set is
/// incomplete anyway).
pub fn spo2(v: f64, scale: Scale, oxygen: Option<bool>) -> u8 {
    let v = whole(v);
    match scale {
        Scale::One => match v {
            ..=91 => 3,
            92..=93 => 2,
            94..=95 => 1,
            _ => 0,
        },
        Scale::Two => match (v, oxygen == Some(true)) {
            (..=83, _) => 3,
            (84..=85, _) => 2,
            (86..=87, _) => 1,
            (88..=92, _) | (_, false) => 0,
            (93..=94, true) => 1,
            (95..=96, true) => 2,
            (_, true) => 3,
        },
    }
}

pub fn air_or_oxygen(oxygen: bool) -> u8 {
    if oxygen { 2 } else { 0 }
}

pub fn systolic_bp(v: f64) -> u8 {
    match whole(v) {
        ..=90 => 3,
        91..=100 => 2,
        101..=110 => 1,
        111..=219 => 0,
        _ => 3,
    }
}

pub fn pulse(v: f64) -> u8 {
    match whole(v) {
        ..=40 => 3,
        41..=50 => 1,
        51..=90 => 0,
        91..=110 => 1,
        111..=130 => 2,
        _ => 3,
    }
}

pub fn consciousness(c: Acvpu) -> u8 {
    if c == Acvpu::Alert { 0 } else { 3 }
}

pub fn temperature(v: f64) -> u8 {
    match tenths(v) {
        ..=350 => 3,
        351..=360 => 1,
        361..=380 => 0,
        381..=390 => 1,
        _ => 2,
    }
}

/// The response for an aggregate and its highest single-parameter score.
pub fn response(total: u8, highest: u8) -> Response {
    match total {
        7.. => Response::Emergency,
        5..=6 => Response::Urgent,
        _ if highest >= 3 => Response::UrgentWard,
        _ => Response::Low,
    }
}

/// NEWS2 of one set of readings on `scale`.
pub fn score(v: &Vitals, scale: Scale) -> News2 {
    let mut parts = Vec::with_capacity(7);
    if let Some(x) = v.respiration_rate {
        parts.push((Parameter::RespirationRate, respiration_rate(x)));
    }
    if let Some(x) = v.spo2 {
        parts.push((Parameter::Spo2, spo2(x, scale, v.oxygen)));
    }
    if let Some(o) = v.oxygen {
        parts.push((Parameter::AirOrOxygen, air_or_oxygen(o)));
    }
    if let Some(x) = v.systolic_bp {
        parts.push((Parameter::SystolicBp, systolic_bp(x)));
    }
    if let Some(x) = v.pulse {
        parts.push((Parameter::Pulse, pulse(x)));
    }
    if let Some(c) = v.consciousness {
        parts.push((Parameter::Consciousness, consciousness(c)));
    }
    if let Some(x) = v.temperature {
        parts.push((Parameter::Temperature, temperature(x)));
    }
    let total = parts.iter().map(|(_, s)| *s).sum();
    let highest = parts.iter().map(|(_, s)| *s).max().unwrap_or(0);
    News2 {
        scale,
        complete: parts.len() == 7,
        parts,
        total,
        response: response(total, highest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_set_scores_nothing() {
        let v = Vitals {
            respiration_rate: Some(16.0),
            spo2: Some(97.0),
            oxygen: Some(false),
            systolic_bp: Some(120.0),
            pulse: Some(70.0),
            consciousness: Some(Acvpu::Alert),
            temperature: Some(37.0),
        };
        let s = score(&v, Scale::One);
        assert_eq!((s.total, s.complete, s.response), (0, true, Response::Low));
    }

    #[test]
    fn rounding_to_the_chart_precision() {
        assert_eq!(temperature(37.95), 0);
        assert_eq!(temperature(38.06), 1);
        assert_eq!(systolic_bp(90.4), 3);
        assert_eq!(systolic_bp(90.5), 2);
    }
}
