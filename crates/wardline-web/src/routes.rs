//! The catalogue of the UI's pages and actions ([`ROUTES`]): what the
//! router in `lib.rs` serves, written down once with what each is for (the
//! e2e sweep `crates/wardline/tests/e2e/ui.rs` asks every one of them
//! without a session and without a CSRF token). Split out of `lib.rs` along
//! this seam to keep it within the tidy limit.

/// One page or action of the UI (paths relative to the server root).
#[derive(Clone, Copy, Debug)]
pub struct UiRoute {
    pub method: &'static str,
    pub path: &'static str,
    pub what: &'static str,
}

const fn r(method: &'static str, path: &'static str, what: &'static str) -> UiRoute {
    UiRoute { method, path, what }
}

/// Everything the UI serves. All of it needs a signed-in session: GETs
/// redirect to the sign-in page without one, POSTs answer 401, and POSTs
/// need the session's CSRF token (403 without it).
pub const ROUTES: &[UiRoute] = &[
    r("GET", "/ui/", "home: redirects to patient search"),
    r("GET", "/ui/patients", "find a patient"),
    r("GET", "/ui/patients/new", "register a patient"),
    r("POST", "/ui/patients/new", "register a patient"),
    r("GET", "/ui/patients/{id}", "chart summary and banner"),
    r("GET", "/ui/patients/{id}/admit", "admit to a bed"),
    r("POST", "/ui/patients/{id}/admit", "admit to a bed"),
    r(
        "GET",
        "/ui/encounters/{id}/transfer",
        "transfer to another bed",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/transfer",
        "transfer to another bed",
    ),
    r("GET", "/ui/encounters/{id}/discharge", "discharge"),
    r("POST", "/ui/encounters/{id}/discharge", "discharge"),
    r(
        "POST",
        "/ui/encounters/{id}/cancel",
        "cancel the last ADT event",
    ),
    r(
        "GET",
        "/ui/patients/{id}/break-glass",
        "emergency access (break-glass): reason and time limit",
    ),
    r(
        "POST",
        "/ui/patients/{id}/break-glass",
        "emergency access (break-glass): audited, raised for review",
    ),
    r(
        "GET",
        "/ui/patients/{id}/consent",
        "record a consent decision",
    ),
    r(
        "POST",
        "/ui/patients/{id}/consent",
        "record a consent decision",
    ),
    r(
        "POST",
        "/ui/patients/{id}/consent/{consent}/withdraw",
        "withdraw a consent decision",
    ),
    r(
        "GET",
        "/ui/break-glass",
        "break-glass uses to review (information governance)",
    ),
    r("GET", "/ui/duplicates", "possible duplicates to review"),
    r("POST", "/ui/duplicates/scan", "look for duplicates now"),
    r(
        "POST",
        "/ui/duplicates/{task}/dismiss",
        "not the same person",
    ),
    r("GET", "/ui/merge", "confirm a merge"),
    r("POST", "/ui/merge", "merge two records"),
    r("POST", "/ui/patients/{id}/unmerge", "undo a merge"),
    r("GET", "/ui/beds", "bed state by site and ward"),
    r("GET", "/ui/beds/{ward}", "the ward's bed board (live)"),
    r(
        "GET",
        "/ui/beds/{ward}/{bed}/state",
        "close or block a bed: the reason, confirmed",
    ),
    r(
        "POST",
        "/ui/beds/{ward}/{bed}/state",
        "bed cleaned, closed, blocked",
    ),
    // ── issue 16: the order catalogue (catalogue.rs) ──
    r(
        "GET",
        "/ui/catalogue",
        "the order catalogue by department, and order sets",
    ),
    r("GET", "/ui/catalogue/new", "add a test or examination"),
    r("POST", "/ui/catalogue/new", "add a test or examination"),
    r("GET", "/ui/catalogue/import", "import a catalogue Bundle"),
    r(
        "POST",
        "/ui/catalogue/import",
        "import a catalogue Bundle (file upload)",
    ),
    r("GET", "/ui/catalogue/sets/new", "add an order set"),
    r("POST", "/ui/catalogue/sets/new", "add an order set"),
    r(
        "GET",
        "/ui/catalogue/sets/{id}",
        "an order set (and its form)",
    ),
    r("POST", "/ui/catalogue/sets/{id}", "change an order set"),
    r(
        "POST",
        "/ui/catalogue/sets/{id}/retire",
        "retire an order set",
    ),
    r(
        "POST",
        "/ui/catalogue/sets/{id}/reinstate",
        "reinstate an order set",
    ),
    r("GET", "/ui/catalogue/{id}", "a test or examination"),
    r(
        "GET",
        "/ui/catalogue/{id}/edit",
        "edit a test or examination",
    ),
    r(
        "POST",
        "/ui/catalogue/{id}/edit",
        "edit a test or examination",
    ),
    r(
        "POST",
        "/ui/catalogue/{id}/retire",
        "retire a test or examination",
    ),
    r(
        "POST",
        "/ui/catalogue/{id}/reinstate",
        "reinstate a test or examination",
    ),
    // ── issue 16: requesting, specimen labels (orders.rs) ──
    r("GET", "/ui/patients/{id}/order", "order tests and imaging"),
    r("POST", "/ui/patients/{id}/order", "order tests and imaging"),
    r(
        "GET",
        "/ui/requisitions/{requisition}",
        "a requisition: its tests, status and tubes",
    ),
    r(
        "POST",
        "/ui/requisitions/{requisition}/cancel",
        "cancel a test of a requisition",
    ),
    r(
        "GET",
        "/ui/requisitions/{requisition}/labels",
        "printable specimen labels with barcodes",
    ),
    // ── issue 16: results inbox, result view, cumulative view (results.rs) ──
    r(
        "GET",
        "/ui/results",
        "results inbox: critical and new first; team escalations",
    ),
    r(
        "GET",
        "/ui/results/{task}",
        "a result: ranges, flags, earlier values (marks it read)",
    ),
    r(
        "POST",
        "/ui/results/{task}/acknowledge",
        "acknowledge a result with an outcome",
    ),
    // ── issue 16: unmatched results worklist (results.rs) ──
    r(
        "GET",
        "/ui/patients/{id}/results",
        "cumulative results: table and trend charts",
    ),
    r("GET", "/ui/results/unmatched", "unmatched results worklist"),
    r(
        "GET",
        "/ui/results/unmatched/{report}",
        "match an unmatched result",
    ),
    r(
        "POST",
        "/ui/results/unmatched/{report}",
        "match an unmatched result",
    ),
    // ── issue 16: the laboratory and radiology (lab.rs) ──
    r(
        "GET",
        "/ui/lab",
        "laboratory: receive a specimen by its barcode; the bench worklist",
    ),
    r(
        "POST",
        "/ui/lab/receive",
        "receive a specimen by its barcode",
    ),
    r("POST", "/ui/lab/import", "enter an analyser's results file"),
    r(
        "GET",
        "/ui/lab/reports/{id}",
        "a laboratory report: enter, validate, authorise",
    ),
    r("POST", "/ui/lab/reports/{id}/results", "enter results"),
    r(
        "POST",
        "/ui/lab/reports/{id}/validate",
        "technical validation with delta checks",
    ),
    r(
        "POST",
        "/ui/lab/reports/{id}/authorise",
        "authorise and release a report",
    ),
    r("GET", "/ui/lab/turnaround", "turnaround times per test"),
    r(
        "GET",
        "/ui/radiology",
        "imaging requests to justify (IR(ME)R)",
    ),
    r(
        "POST",
        "/ui/radiology/{id}/justify",
        "record an IR(ME)R justification",
    ),
    // ── end of issue 16 ──
    // ── issue 17: formulary ──
    r(
        "GET",
        "/ui/formulary",
        "the formulary: search the medicines",
    ),
    r("GET", "/ui/formulary/import", "import a formulary file"),
    r(
        "POST",
        "/ui/formulary/import",
        "import a formulary file (upload or paste)",
    ),
    r("GET", "/ui/formulary/{id}", "a medicine of the formulary"),
    // ── end of issue 17: formulary ──
    // ── issue 17: prescribing ──
    r("GET", "/ui/patients/{id}/medicines", "the drug chart"),
    r("GET", "/ui/patients/{id}/medicines/new", "prescribe"),
    r("POST", "/ui/patients/{id}/medicines/new", "prescribe"),
    r("GET", "/ui/prescriptions/{id}", "a prescription"),
    r(
        "GET",
        "/ui/prescriptions/{id}/change",
        "change a prescription",
    ),
    r(
        "POST",
        "/ui/prescriptions/{id}/change",
        "change a prescription",
    ),
    r(
        "POST",
        "/ui/prescriptions/{id}/discontinue",
        "discontinue a prescription",
    ),
    // ── end of issue 17: prescribing ──
    // ── issue 17: screening ──
    r(
        "GET",
        "/ui/pharmacy",
        "the pharmacist's screening worklist, by ward",
    ),
    r(
        "GET",
        "/ui/pharmacy/prescriptions/{id}",
        "one prescription to screen, annotate or query",
    ),
    r(
        "POST",
        "/ui/pharmacy/prescriptions/{id}/screen",
        "mark a prescription screened",
    ),
    r(
        "POST",
        "/ui/pharmacy/prescriptions/{id}/annotate",
        "annotate a prescription",
    ),
    r(
        "POST",
        "/ui/pharmacy/prescriptions/{id}/query",
        "query a prescription with its prescriber",
    ),
    r(
        "GET",
        "/ui/pharmacy/queries",
        "the prescriber's open pharmacy queries",
    ),
    r(
        "POST",
        "/ui/pharmacy/queries/{task}/answer",
        "answer a pharmacy query",
    ),
    r(
        "GET",
        "/ui/encounters/{id}/discharge-medicines",
        "an admission's discharge medicines (TTO)",
    ),
    // ── end of issue 17: screening ──
    // ── issue 17: mar ──
    r(
        "GET",
        "/ui/drug-round",
        "the signed-in nurse's ward's drug round",
    ),
    r(
        "GET",
        "/ui/wards/{ward}/drug-round",
        "a ward's drug round: due, overdue, given",
    ),
    r(
        "GET",
        "/ui/patients/{id}/mar",
        "the medication administration record",
    ),
    r(
        "GET",
        "/ui/patients/{id}/mar/{request}/dose",
        "give or omit a dose",
    ),
    r(
        "POST",
        "/ui/patients/{id}/mar/{request}/give",
        "record a dose given (witness for a controlled drug)",
    ),
    r(
        "POST",
        "/ui/patients/{id}/mar/{request}/omit",
        "record a dose not given, with its reason",
    ),
    // ── end of issue 17: mar ──
    // ── issue 17: chemotherapy ──
    r(
        "GET",
        "/ui/patients/{id}/chemotherapy",
        "a patient's chemotherapy cycles; prescribe a cycle",
    ),
    r(
        "POST",
        "/ui/patients/{id}/chemotherapy",
        "prescribe a chemotherapy cycle",
    ),
    r(
        "GET",
        "/ui/chemotherapy/{id}",
        "a chemotherapy cycle: doses, checks, verification",
    ),
    r(
        "POST",
        "/ui/chemotherapy/{id}/verify",
        "verify a chemotherapy cycle",
    ),
    r(
        "POST",
        "/ui/chemotherapy/{id}/release",
        "release a chemotherapy cycle",
    ),
    r(
        "POST",
        "/ui/chemotherapy/{id}/delay",
        "delay a chemotherapy cycle",
    ),
    r(
        "POST",
        "/ui/chemotherapy/{id}/revoke",
        "cancel (revoke) a chemotherapy cycle",
    ),
    // ── end of issue 17: chemotherapy ──
    // ── issue 18: notes ──
    r(
        "GET",
        "/ui/patients/{id}/notes",
        "a patient's clinical notes, newest first",
    ),
    r(
        "POST",
        "/ui/patients/{id}/notes",
        "save a new clinical note as a draft",
    ),
    r(
        "GET",
        "/ui/patients/{id}/notes/new",
        "write a ward round or clinic note by heading",
    ),
    r(
        "GET",
        "/ui/notes/{id}",
        "a clinical note with every version and what changed",
    ),
    r("POST", "/ui/notes/{id}/edit", "edit a draft note"),
    r("POST", "/ui/notes/{id}/sign", "sign a note (its author)"),
    r(
        "POST",
        "/ui/notes/{id}/amend",
        "amend a signed note, with the reason",
    ),
    r(
        "POST",
        "/ui/notes/{id}/error",
        "mark a note entered in error",
    ),
    r(
        "POST",
        "/ui/notes/{id}/entries",
        "add a coded diagnosis or procedure to a note",
    ),
    r(
        "POST",
        "/ui/notes/{id}/entries/correct",
        "correct a coded entry's ICD-10 or OPCS-4 code",
    ),
    // ── end of issue 18: notes ──
    // ── issue 18: discharge ──
    r(
        "GET",
        "/ui/encounters/{id}/discharge-summary",
        "an admission's discharge summary, or start it",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/discharge-summary",
        "start a discharge summary pre-filled from the record",
    ),
    r(
        "GET",
        "/ui/discharge-summaries/{id}",
        "a discharge summary under the PRSB headings: preview, sign",
    ),
    r(
        "GET",
        "/ui/discharge-summaries/{id}/edit",
        "write the clinician's headings of a draft summary",
    ),
    r(
        "POST",
        "/ui/discharge-summaries/{id}/edit",
        "save a draft discharge summary",
    ),
    r(
        "POST",
        "/ui/discharge-summaries/{id}/sign",
        "sign a discharge summary (document Bundle, PDF)",
    ),
    r(
        "GET",
        "/ui/discharge-summaries/{id}/amend",
        "amend a signed discharge summary",
    ),
    r(
        "POST",
        "/ui/discharge-summaries/{id}/amend",
        "amend and sign again",
    ),
    r(
        "GET",
        "/ui/discharge-summaries/{id}/pdf",
        "a discharge summary as PDF",
    ),
    // ── end of issue 18: discharge ──
    // ── issue 18: transfers ──
    r(
        "GET",
        "/ui/transfers",
        "discharge summaries against the 24-hour standard: by ward and specialty, overdue, failed deliveries",
    ),
    r(
        "GET",
        "/ui/transfers/routing",
        "GP practices' delivery routes (MESH, email)",
    ),
    r(
        "GET",
        "/ui/transfers/routing/{org}",
        "change a GP practice's delivery routes",
    ),
    r(
        "POST",
        "/ui/transfers/routing/{org}",
        "save a GP practice's delivery routes",
    ),
    // ── end of issue 18: transfers ──
    // ── issue 18: letters ──
    r(
        "GET",
        "/ui/patients/{id}/clinic-letters",
        "a patient's outpatient attendances, their clinic letters and the patient's preference for copies",
    ),
    r(
        "POST",
        "/ui/patients/{id}/letter-preference",
        "record how the patient wants copies of letters (email, post, none)",
    ),
    r(
        "GET",
        "/ui/encounters/{id}/clinic-letter",
        "an attendance's clinic letter, or start it",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/clinic-letter",
        "start a clinic letter pre-filled from the record",
    ),
    r(
        "GET",
        "/ui/clinic-letters/{id}",
        "a clinic letter under the PRSB outpatient headings: preview, sign, where it went",
    ),
    r(
        "GET",
        "/ui/clinic-letters/{id}/edit",
        "write the clinician's headings of a draft letter",
    ),
    r(
        "POST",
        "/ui/clinic-letters/{id}/edit",
        "save a draft clinic letter",
    ),
    r(
        "POST",
        "/ui/clinic-letters/{id}/sign",
        "sign a clinic letter (sent to the GP, copied to the patient)",
    ),
    r(
        "GET",
        "/ui/clinic-letters/{id}/amend",
        "amend a signed clinic letter",
    ),
    r(
        "POST",
        "/ui/clinic-letters/{id}/amend",
        "amend a clinic letter and sign it again",
    ),
    r(
        "GET",
        "/ui/clinic-letters/{id}/pdf",
        "a clinic letter as PDF",
    ),
    r(
        "GET",
        "/ui/letter-printing",
        "patients' copies of clinic letters to print and post",
    ),
    r(
        "POST",
        "/ui/letter-printing/{task}/done",
        "mark a patient's copy printed and posted",
    ),
    // ── end of issue 18: letters ──
    // ── issue 18: referrals ──
    r(
        "GET",
        "/ui/referrals",
        "e-Referrals sent to other providers, with their states",
    ),
    r(
        "GET",
        "/ui/referrals/triage",
        "e-Referrals received from other providers, to accept or reject",
    ),
    r(
        "GET",
        "/ui/patients/{id}/referrals",
        "a patient's e-Referrals",
    ),
    r(
        "GET",
        "/ui/patients/{id}/referrals/new",
        "make an e-Referral: provider, priority, reason, documents",
    ),
    r(
        "POST",
        "/ui/patients/{id}/referrals",
        "save an e-Referral as a draft",
    ),
    r(
        "POST",
        "/ui/patients/{id}/referrals/upload",
        "upload a PDF to attach to an e-Referral",
    ),
    r(
        "GET",
        "/ui/referrals/{id}",
        "an e-Referral: its provider, state, attachments and delivery",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/send",
        "send an e-Referral (BaRS)",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/retry",
        "send an undelivered e-Referral again",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/cancel",
        "cancel an e-Referral, with the reason",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/reject",
        "reject a received e-Referral, with the reason",
    ),
    // ── end of issue 18: referrals ──
    // ── issue 18: social ──
    r(
        "GET",
        "/ui/social-care",
        "Care Act notices to local authorities by ward: deliveries, overdue and due notices",
    ),
    r(
        "GET",
        "/ui/encounters/{id}/social-care",
        "an admission's Care Act notices: give the assessment and discharge notices",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/social-care/assessment",
        "give a Care Act assessment notice to the local authority",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/social-care/discharge",
        "give a Care Act discharge notice (a reason to give it short of the timescales)",
    ),
    r(
        "GET",
        "/ui/encounters/{id}/social-care/withdraw",
        "withdraw a Care Act notice",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/social-care/withdraw",
        "send the withdrawal notice",
    ),
    // ── end of issue 18: social ──
    // ── issue 18: access ──
    // ── end of issue 18: access ──
    // ── issue 19: rtt ──
    r(
        "GET",
        "/ui/referrals/{id}/triage",
        "triage a received referral: accept with a priority, redirect or reject",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/triage/accept",
        "accept a referral: the RTT clock starts on the date received, the patient goes on the outpatient (new) list",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/triage/redirect",
        "redirect a referral to another service or provider",
    ),
    r(
        "GET",
        "/ui/patients/{id}/referrals/in/new",
        "record a referral received: a letter typed in, or from another consultant",
    ),
    r(
        "POST",
        "/ui/patients/{id}/referrals/in",
        "record a referral received, with the letter's PDF",
    ),
    r(
        "GET",
        "/ui/patients/{id}/pathways",
        "a patient's referral to treatment pathways and waiting-list entries",
    ),
    r(
        "GET",
        "/ui/rtt/pathways/{id}",
        "an RTT pathway: its clock, weeks waited and events",
    ),
    r(
        "POST",
        "/ui/rtt/pathways/{id}/events",
        "record an RTT event (status, date, the record that is the event)",
    ),
    r(
        "GET",
        "/ui/rtt/ptl",
        "the patient-targeted list: weeks-waiting bands, 18-week performance, 52-week breaches",
    ),
    r("GET", "/ui/rtt/ptl.csv", "the PTL as CSV"),
    r(
        "GET",
        "/ui/waiting-lists",
        "the waiting lists by list and specialty",
    ),
    r(
        "GET",
        "/ui/waiting-lists/validation",
        "the waiting-list validation worklist",
    ),
    r(
        "GET",
        "/ui/waiting-lists/entries/{id}",
        "a waiting-list entry: suspend, resume, remove, validate",
    ),
    r(
        "POST",
        "/ui/waiting-lists/entries/{id}/suspend",
        "suspend an entry with a reason until a date",
    ),
    r(
        "POST",
        "/ui/waiting-lists/entries/{id}/resume",
        "end an entry's suspension",
    ),
    r(
        "POST",
        "/ui/waiting-lists/entries/{id}/remove",
        "remove an entry from its list, with the reason",
    ),
    r(
        "POST",
        "/ui/waiting-lists/entries/{id}/validate",
        "mark an entry validated",
    ),
    r(
        "GET",
        "/ui/patients/{id}/waiting-lists/new",
        "add a patient to a waiting list (procedure, P1 to P4, date decided)",
    ),
    r(
        "POST",
        "/ui/patients/{id}/waiting-lists",
        "add a patient to a waiting list",
    ),
    // ── end of issue 19: rtt ──
    // ── issue 19: clinics ──
    r("GET", "/ui/clinics", "templates; ?clinic=: its day list"),
    r("POST", "/ui/clinics", "save a template; clinic=: slots"),
    r("GET", "/ui/outpatients", "to book; ?entry=: free slots"),
    r("POST", "/ui/outpatients", "book an entry into a slot"),
    r(
        "POST",
        "/ui/outpatients/offers",
        "record an offer of dates to a patient on the list (reasonable: 3 weeks' notice, two dates)",
    ),
    r(
        "POST",
        "/ui/outpatients/offers/{id}",
        "the patient's answer to an offer: a date accepted (booked) or declined",
    ),
    r("GET", "/ui/appointments/{id}", "an appointment's page"),
    r("POST", "/ui/appointments/{id}/{action}", "check-in etc."),
    // ── end of issue 19: clinics ──
    // ── issue 19: theatres ──
    r("GET", "/ui/theatres", "a day's theatre sessions; plan one"),
    r("POST", "/ui/theatres", "plan a theatre session"),
    r(
        "GET",
        "/ui/theatres/sessions/{id}",
        "a session's list; add cases",
    ),
    r(
        "POST",
        "/ui/theatres/sessions/{id}/add",
        "add an entry to the list",
    ),
    r(
        "POST",
        "/ui/theatres/cases/{id}/move",
        "move a case up or down",
    ),
    r(
        "GET",
        "/ui/theatres/cases/{id}",
        "a case on the day, WHO checklist",
    ),
    r(
        "POST",
        "/ui/theatres/cases/{id}/step",
        "record the next step",
    ),
    r(
        "POST",
        "/ui/theatres/cases/{id}/checklist",
        "tick checklist items",
    ),
    r(
        "POST",
        "/ui/theatres/cases/{id}/operation",
        "record the operation",
    ),
    r("POST", "/ui/theatres/cases/{id}/cancel", "cancel a case"),
    r("GET", "/ui/theatres/utilisation", "theatre utilisation"),
    // ── end of issue 19: theatres ──
    // ── issue 20: news2 ──
    r(
        "GET",
        "/ui/patients/{id}/observations",
        "a patient's observation chart: NEWS2 alerts, the ward form, graphs with the NEWS2 bands, the table",
    ),
    r(
        "POST",
        "/ui/patients/{id}/observations",
        "record a set of vital signs (NEWS2 scored, escalated)",
    ),
    r(
        "POST",
        "/ui/patients/{id}/observations/scale",
        "set the patient's SpO₂ scale (scale 2: prescribers only)",
    ),
    r(
        "GET",
        "/ui/observations/tasks",
        "open NEWS2 escalation tasks per ward or team",
    ),
    r(
        "POST",
        "/ui/observations/tasks/{id}/acknowledge",
        "acknowledge a NEWS2 escalation",
    ),
    r(
        "POST",
        "/ui/observations/tasks/{id}/complete",
        "complete a NEWS2 escalation with its outcome",
    ),
    // ── end of issue 20: news2 ──
    // ── issue 20: ed ──
    r("GET", "/ui/ed", "the ED tracking board (live)"),
    r("GET", "/ui/ed/arrive", "find the arriving patient"),
    r("POST", "/ui/ed/arrive", "record an arrival"),
    r("GET", "/ui/ed/attendances/{id}", "an ED attendance"),
    r("POST", "/ui/ed/attendances/{id}/triage", "triage"),
    r("POST", "/ui/ed/attendances/{id}/stream", "stream"),
    r("POST", "/ui/ed/attendances/{id}/see", "take the patient"),
    r("POST", "/ui/ed/attendances/{id}/waiting", "waiting for"),
    r("POST", "/ui/ed/attendances/{id}/refer", "refer"),
    r("POST", "/ui/ed/attendances/{id}/code", "ECDS coding"),
    r("POST", "/ui/ed/attendances/{id}/admit", "admit"),
    r("POST", "/ui/ed/attendances/{id}/discharge", "leave"),
    r("GET", "/ui/ed/export", "the ECDS extract"),
    // ── end of issue 20: ed ──
    // ── issue 20: alerts ──
    r("GET", "/ui/patients/{id}/alerts", "clinical alerts"),
    r("POST", "/ui/patients/{id}/alerts/allergies", "an allergy"),
    r("POST", "/ui/patients/{id}/alerts/nka", "none known"),
    r("POST", "/ui/patients/{id}/alerts/cpis", "a CP-IS flag"),
    r("POST", "/ui/patients/{id}/alerts/eol", "end of life"),
    r("POST", "/ui/patients/{id}/alerts/mha", "an MHA section"),
    r("POST", "/ui/allergies/{id}/{action}", "verify, refute"),
    r("POST", "/ui/alerts/{flag}/{action}", "regrade, renew, end"),
    // ── end of issue 20: alerts ──
    // ── issue 20: tasks ──
    r("GET", "/ui/tasks", "task lists: mine, my teams', a ward's"),
    r("GET", "/ui/tasks/{id}", "a task, its history and actions"),
    r("POST", "/ui/tasks/{id}/claim", "claim a task"),
    r("POST", "/ui/tasks/{id}/assign", "assign or reassign a task"),
    r(
        "POST",
        "/ui/tasks/{id}/complete",
        "complete a task with its outcome",
    ),
    r(
        "POST",
        "/ui/tasks/{id}/change",
        "change a task's due time or priority",
    ),
    // ── end of issue 20: tasks ──
    // ── issue 20: forms ──
    r("GET", "/ui/forms", "forms: list, define"),
    r("POST", "/ui/forms", "create a draft form"),
    r("POST", "/ui/forms/import", "import a Questionnaire"),
    r("GET", "/ui/forms/{id}", "a form version and its items"),
    r("POST", "/ui/forms/{id}/items", "add an item"),
    r("POST", "/ui/forms/{id}/remove", "remove an item"),
    r("POST", "/ui/forms/{id}/activate", "make it active"),
    r("POST", "/ui/forms/{id}/retire", "retire a version"),
    r("POST", "/ui/forms/{id}/version", "a new draft version"),
    r("GET", "/ui/patients/{id}/forms", "a patient's forms"),
    r("GET", "/ui/patients/{id}/forms/{form}", "fill a form"),
    r("POST", "/ui/patients/{id}/forms/{form}", "save a response"),
    r("GET", "/ui/responses/{id}", "a form response"),
    r("GET", "/ui/kpis", "forms KPIs per ward"),
    r("POST", "/ui/kpis", "define a KPI (forms managers)"),
    r(
        "POST",
        "/ui/kpis/{id}/retire",
        "retire a KPI (forms managers)",
    ),
    // ── end of issue 20: forms ──
    r(
        "GET",
        "/ui/events",
        "server-sent events: the record changed",
    ),
    r(
        "GET",
        "/ui/static/{*file}",
        "stylesheets, scripts and icons",
    ),
];
