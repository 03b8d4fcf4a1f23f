//! Transfers of care (issue 18): delivery of documents to GP practices over MESH and email.
