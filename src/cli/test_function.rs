//! `verge test-function --function FILE --event FILE`: one JSON object with AWS TestFunction's
//! fields (`ComputeUtilization`, `FunctionExecutionLogs`, `FunctionErrorMessage`,
//! `FunctionOutput`) and `ValidationErrors`. Exit 0 when the function ran (whatever it did),
//! 64 when the inputs cannot be used.

use std::process::ExitCode;

use verge_config::Runtime;

use super::{EXIT_BAD_CONFIG, TestFunctionArgs};

fn fail(message: &str) -> ExitCode {
    eprintln!("verge test-function: {message}");
    ExitCode::from(EXIT_BAD_CONFIG)
}

/// Run the subcommand.
pub fn run(args: &TestFunctionArgs) -> ExitCode {
    let Some(runtime) = Runtime::parse(&args.runtime) else {
        return fail(&format!(
            "unknown runtime `{}`; use cloudfront-js-1.0, cloudfront-js-2.0 or lambda-edge",
            args.runtime
        ));
    };
    let budget = match verge_config::parse_duration(&args.budget) {
        Ok(b) if !b.is_zero() && b <= verge_config::defaults::MAX_FUNCTION_BUDGET => b,
        Ok(_) => return fail("--budget must be greater than zero and at most 1ms"),
        Err(e) => return fail(&format!("--budget: {e}")),
    };
    let source = match std::fs::read_to_string(&args.function) {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot read {}: {e}", args.function.display())),
    };
    let event = match std::fs::read_to_string(&args.event) {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot read {}: {e}", args.event.display())),
    };
    let kvs = match &args.kvs {
        // Refused before the handler is loaded, whose errors would otherwise come first.
        Some(_) if runtime == Runtime::LambdaEdge => {
            return fail(&format!(
                "--kvs: {}",
                verge_functions::test_function::NO_KVS_AT_THE_EDGE
            ));
        }
        Some(path) => match verge_functions::kvs::KvStore::load(path) {
            Ok(store) => Some(std::sync::Arc::new(store)),
            Err(e) => return fail(&format!("--kvs: {e}")),
        },
        None => None,
    };
    // A top-level runaway must not hang the command: check the load on a throwaway thread.
    let code = std::sync::Arc::from(source.as_str());
    let deadline = std::time::Duration::from_secs(2);
    let loads = if runtime == Runtime::LambdaEdge {
        verge_functions::edge_runtime::check_loads("test", &source, deadline)
    } else {
        verge_functions::fast_pool::check_loads(&code, runtime, deadline)
    };
    if let Err(e) = loads {
        return fail(&format!("{}: {e}", args.function.display()));
    }
    if runtime == Runtime::CloudfrontJs2 {
        verge_functions::source_scan::warn_field_risks("test", &args.function, &source);
    }
    match verge_functions::test_function::test_function_with_kvs(
        &source, runtime, &event, budget, kvs,
    ) {
        Ok(result) => match serde_json::to_string_pretty(&result) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot print the result: {e}")),
        },
        Err(e) => fail(&e),
    }
}
