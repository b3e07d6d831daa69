//! Runs the Python driver tests (`tests/python`, psycopg 3 + SQLAlchemy 2)
//! against the freshet binary built for this test run. CI installs
//! `tests/python/requirements.txt`; missing Python packages fail the test.

use std::path::Path;
use std::process::Command;

#[test]
fn python_driver_tests() {
    let repo_root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent directory");
    let tests_dir = repo_root.join("tests").join("python");
    assert!(
        tests_dir.join("test_clients.py").is_file(),
        "missing {}",
        tests_dir.display()
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(&python)
        .current_dir(repo_root)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/python",
        ])
        .env("FRESHET_BIN", env!("CARGO_BIN_EXE_freshet"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("could not run `{python} -m pytest`: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    match out.status.code() {
        Some(0) => {}
        Some(5) => panic!("pytest collected no tests in tests/python"),
        _ => panic!(
            "pytest failed ({}); if it says `No module named ...`, run \
             `pip install -r tests/python/requirements.txt`\n{stdout}\n{stderr}",
            out.status
        ),
    }
    assert!(
        stdout.contains(" passed"),
        "pytest output has no 'passed' summary:\n{stdout}"
    );
}
