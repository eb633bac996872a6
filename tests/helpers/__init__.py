"""What the tests share, importable from any test as `helpers.<module>` (pytest puts tests/ on
sys.path, beside its conftest.py): copies of the repository for DVC runs (`repository`), a stand-in
hub and a forward proxy for download tests (`hub_support`, `forward_proxy`), GPT-2's BPE ranks
(`gpt2_ranks`), local servers and Chromium (`local_server`), a small corpus config
(`small_corpus`), random models and attribution contexts (`circuit_models`) and synthetic blind-study
packets (`study_packets`)."""
