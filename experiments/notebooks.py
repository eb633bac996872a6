"""DVC stage `notebooks`: every notebook that applies to the profile, executed on its outputs and
written with outputs and figures to `results/<profile>/notebooks/<name>.ipynb` and `<name>.html`
(transcoder_lab.notebooks). A cell that raises fails the stage, naming the notebook and the cell."""

from transcoder_lab.config import Config
from transcoder_lab.notebooks import ExecutedNotebook, execute_notebooks
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> list[ExecutedNotebook]:
    done = execute_notebooks(cfg)
    for notebook in done:
        print(f"{notebook.name}: {notebook.seconds:.0f} s, {notebook.n_images} figures -> {notebook.html}")
    print(f"{len(done)} notebooks in {sum(n.seconds for n in done):.0f} s")
    return done


if __name__ == "__main__":
    stage_main(run)()
