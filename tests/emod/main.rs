//! emod's end-to-end tests against the real daemon, as one test binary of modules (issue 27):
//! each of the 20 files was its own integration-test target, and each target linked the whole of
//! emod, ONNX Runtime's bindings, actix and diesel again. One binary links once. Run one area with
//! `cargo test -p emod --test e2e capture::` (the module path is the old target's name).

#[path = "../common/mod.rs"]
#[macro_use]
mod common;
#[path = "../common/models.rs"]
mod models;

mod analyze_uploads;
mod api_analyze;
mod api_auth;
mod api_sessions;
mod audit;
mod capture;
mod capture_control;
mod cli;
mod cli_analyze;
mod export_paging;
mod fuzz_corpus;
mod hostile;
mod hostile_auth;
mod hostile_ingest;
mod openapi_contract;
mod ops;
mod outage;
mod partitions;
mod storage_failures;
mod tokens;
mod upgrade;
