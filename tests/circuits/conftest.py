"""The circuits tests' folder, on sys.path (pytest's default import mode puts a conftest's folder
there), so the tests of its subfolders (circuit_tracer/) share its helpers: models_for_tests and
test_attribution's random models."""
