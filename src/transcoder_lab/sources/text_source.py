"""A pretrained profile's text: parquet files of a hub dataset repo, read in order, cached once.

1. `source_files`: the repo's paths at `profile.text.revision` that match the `files` glob, sorted
   by name. With the hub reachable they are listed there; offline (HF_HUB_OFFLINE=1, or the hub
   unreachable) they are the matching files already in the Hugging Face cache, which are a
   prefix of the same order because files are fetched as the reader reaches them.
2. `text_documents`: each file is fetched with `hf_hub_download` (a cached file is used as is,
   so every run after the first works offline), opened with pyarrow and read row group by row
   group; `skip` documents are passed over using the row groups' counts.
3. `heldout_contexts`: the one held-out set that evaluation, held-out dictionary metrics and the
   blind study share: the corpus's held-out split for organism profiles, and for pretrained ones
   the BOS-led contexts (transcoder_lab.data.stream_contexts) of the documents after
   `text.heldout_skip_documents`.
Nothing here falls back from one profile to another: a source that cannot be read raises
`TextSourceUnavailableError`, naming the repo, what failed and how to fix it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int

from transcoder_lab.config import Config, TextSourceConfig, load_profile
from transcoder_lab.data import split_contexts, stream_contexts, tokenized_texts
from transcoder_lab.paths import corpus_dir
from transcoder_lab.sources.hub import HubFinding, explain, hub_advice, offline_reason


class TextSourceUnavailableError(RuntimeError):
    """A pretrained profile's text could be read neither from the hub nor from the local cache."""


def _source_error(
    source: TextSourceConfig, reason: str, finding: HubFinding | None = None
) -> TextSourceUnavailableError:
    """The error for a source that cannot be read: `reason`, then the fix for `finding` (hub.hub_advice)."""
    return TextSourceUnavailableError(
        f"could not read the text source {source.repo}@{source.revision} (files '{source.files}'): "
        f"{reason}. A pretrained profile fetches these parquet files from the hub once, as it reads "
        f"them (to read another source, set profile.text.repo / revision / files); {hub_advice(finding)}"
    )


def _cached_source_files(source: TextSourceConfig) -> list[str] | None:
    """The source's files present in the local cache at `revision` (None: nothing cached)."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"datasets--{source.repo.replace('/', '--')}"
    ref = folder / "refs" / source.revision
    commit = ref.read_text().strip() if ref.is_file() else source.revision
    snapshot = folder / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    names = [str(path.relative_to(snapshot)) for path in snapshot.rglob("*") if path.is_file()]
    return sorted(name for name in names if fnmatch.fnmatch(name, source.files))


def source_files(source: TextSourceConfig) -> list[str]:
    """The repo paths of the source's parquet files, sorted: from the hub, or offline (HF_HUB_OFFLINE
    or hub unreachable) those already in the cache, which are a prefix of that order when the
    files were fetched as they were read."""
    from huggingface_hub import HfApi

    why = offline_reason()
    if why is None:
        try:
            names = HfApi().list_repo_files(source.repo, repo_type="dataset", revision=source.revision)
            files = sorted(name for name in names if fnmatch.fnmatch(name, source.files))
            if not files:
                raise _source_error(source, f"no file of the repo matches; it has {sorted(names)[:10]}")
            return files
        except TextSourceUnavailableError:
            raise
        except Exception as error:  # a hub that stopped answering, an unknown repo or revision
            why = explain(error, source.repo, revision=source.revision, repo_type="dataset")
    cached = _cached_source_files(source)
    if not cached:
        raise _source_error(source, f"{why}, and none of its files is in the local cache", why)
    return cached


def _open(source: TextSourceConfig, name: str) -> Any:
    """One of the source's files as a pyarrow ParquetFile, fetched into the cache if not there."""
    import pyarrow.parquet as pq
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(source.repo, name, repo_type="dataset", revision=source.revision)
    except Exception as error:  # offline and not cached, network or hub errors
        finding = explain(error, source.repo, filename=name, revision=source.revision, repo_type="dataset")
        raise _source_error(source, f"fetching {name} failed: {finding}", finding) from error
    return pq.ParquetFile(path)


def fetch(source: TextSourceConfig, n_documents: int) -> list[str]:
    """Fetch the source's files in reading order until they hold `n_documents` documents (to fill
    a cache before offline runs); returns the files' names."""
    fetched, held = [], 0
    for name in source_files(source):
        if held >= n_documents:
            break
        held += _open(source, name).metadata.num_rows
        fetched.append(name)
        print(f"{name}: {held:,} documents so far")
    if held < n_documents:
        raise _source_error(source, f"its files hold {held:,} documents, fewer than {n_documents:,}")
    return fetched


def text_documents(source: TextSourceConfig, skip: int = 0) -> Iterator[str]:
    """Documents of the source in stored order (deterministic) after the first `skip`.

    Files are fetched (or found in the cache) one at a time, as the reader reaches them; a file
    lying wholly inside the skipped documents is still fetched once, for its row count.
    """
    for name in source_files(source):
        parquet = _open(source, name)
        if source.text_field not in parquet.schema_arrow.names:
            raise _source_error(
                source, f"{name} has no column '{source.text_field}' (columns {parquet.schema_arrow.names})"
            )
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if skip >= rows:
                skip -= rows
                continue
            texts = parquet.read_row_group(group, columns=[source.text_field]).column(0).to_pylist()
            yield from texts[skip:]
            skip = 0


def heldout_contexts(
    cfg: Config, tokenizer: Any, n_contexts: int, context_size: int
) -> Int[torch.Tensor, "n_contexts n_ctx"]:
    """The first `n_contexts` BOS-led held-out contexts: the corpus's held-out split (organism
    profiles) or the text source after `text.heldout_skip_documents` documents (pretrained ones).
    The evaluation, the held-out dictionary metrics and the blind study all read this one set."""
    bos = tokenizer.bos_token_id
    if cfg.profile.corpus is not None:
        contexts = split_contexts(corpus_dir(cfg), "heldout", context_size, bos)
        where = "the corpus's held-out split; enlarge profile.corpus.n_heldout_documents"
    else:
        source = cfg.profile.text
        assert source is not None  # checked by load_config
        texts = text_documents(source, skip=source.heldout_skip_documents)
        batches = stream_contexts(tokenized_texts(texts, tokenizer), context_size, bos, n_contexts)
        contexts = next(batches, torch.empty(0, context_size, dtype=torch.long))
        skipped = source.heldout_skip_documents
        where = f"{source.repo} after {skipped} documents; lower profile.text.heldout_skip_documents"
    if len(contexts) < n_contexts:
        raise ValueError(
            f"the held-out text gives {len(contexts)} contexts of {context_size} tokens where {n_contexts} "
            f"are needed ({where}, or ask for fewer contexts)."
        )
    return torch.as_tensor(contexts[:n_contexts], dtype=torch.long)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m transcoder_lab.sources.text_source",
        description="Fill the Hugging Face cache with a pretrained profile's text files, in reading order.",
    )
    parser.add_argument("profile", help="a pretrained profile, e.g. gpt2_small")
    parser.add_argument(
        "--documents", type=int, default=None,
        help="documents to cover (default: the held-out set's start plus as many again as it skips)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    source = load_profile(args.profile).profile.text
    if source is None:
        parser.error(f"profile {args.profile} reads no hub text (it has no profile.text)")
    fetch(source, args.documents or 2 * source.heldout_skip_documents)


if __name__ == "__main__":
    main()
