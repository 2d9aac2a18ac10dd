"""The probes' figures and view blocks: accuracy and selectivity per site for every task, and the
phone confusions at the best site, each with its numbers beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...study import Figure, Table, Text, new_figure, save_figure

MODEL_STYLES = {"trained": "-", "random": "--"}
MODEL_NAMES = {"trained": "trained", "random": "random weights"}


def short_site(site: str) -> str:
    return site.replace("layer ", "L")


def save_figures(summary: dict, arrays: dict, folder: Path) -> None:
    _accuracy_figure(summary, folder)
    _selectivity_figure(summary, folder)
    phone = _task(summary, "phone")
    if phone is not None:
        _confusion_figure(phone, arrays["phone/confusion"], folder)


def _task(summary: dict, name: str) -> dict | None:
    return next((task for task in summary["tasks"] if task["name"] == name), None)


def _accuracy_figure(summary: dict, folder: Path) -> None:
    tasks, x = summary["tasks"], np.arange(len(summary["sites"]))
    columns = min(3, len(tasks))
    rows = -(-len(tasks) // columns)
    figure, axes = new_figure(3.2 * columns, 2.6 * rows)
    axes.remove()  # one panel per task instead
    panels = np.atleast_1d(figure.subplots(rows, columns, sharey=True, squeeze=False)).ravel()
    for panel, task in zip(panels, tasks):
        for kind in summary["models"]:
            scores = task[kind]
            panel.errorbar(x, scores["accuracy"], yerr=scores["fold_std"], linestyle=MODEL_STYLES[kind], color="#1f5fa8",
                           marker="o", markersize=3, capsize=2, label=f"{MODEL_NAMES[kind]}")
            panel.plot(x, scores["control"], linestyle=MODEL_STYLES[kind], color="#d08a1e", marker=".",
                       label=f"control task, {MODEL_NAMES[kind]}")
        panel.axhline(task["majority"], color="grey", linewidth=1, linestyle=":", label="majority class")
        panel.set_title(f"{task['name']} ({len(task['classes'])} classes, {task['holds_out']}s held out)", fontsize=8)
        panel.set_xticks(x, [short_site(site) for site in summary["sites"]], fontsize=7)
        panel.set_ylim(0, 1.02)
    for panel in panels[len(tasks):]:
        panel.set_visible(False)
    panels[0].set_ylabel("held-out accuracy")
    figure.tight_layout()
    figure.legend(*panels[0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0), ncol=5, fontsize=7)
    save_figure(figure, folder, "accuracy.png")


def _selectivity_figure(summary: dict, folder: Path) -> None:
    x = np.arange(len(summary["sites"]))
    figure, axes = new_figure(7, 3.2)
    colours = [f"C{i}" for i in range(len(summary["tasks"]))]
    for task, colour in zip(summary["tasks"], colours):
        for kind in summary["models"]:
            axes.plot(x, task[kind]["selectivity"], linestyle=MODEL_STYLES[kind], color=colour, marker="o", markersize=3,
                      label=task["name"] if kind == "trained" else None)
    axes.axhline(0, color="grey", linewidth=1)
    axes.set_xticks(x, [short_site(site) for site in summary["sites"]])
    axes.set(ylabel="selectivity (accuracy − control)", title="solid: trained weights; dashed: random weights")
    axes.legend(fontsize=7, ncol=2)
    save_figure(figure, folder, "selectivity.png")


def _confusion_figure(task: dict, matrix: np.ndarray, folder: Path) -> None:
    classes = task["classes"]
    figure, axes = new_figure(7, 6.5)
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(classes)), classes, fontsize=5, rotation=90)
    axes.set_yticks(range(len(classes)), classes, fontsize=5)
    axes.set(xlabel="predicted", ylabel="true phone", title=f"phone probe at {task['best_site']} (rows sum to 1)")
    figure.colorbar(image, ax=axes, fraction=0.04)
    save_figure(figure, folder, "phone_confusion.png")


def views(summary: dict, config, arrays: dict) -> list:
    models = summary["models"]
    accuracy_rows = []
    for task in summary["tasks"]:
        for i, site in enumerate(summary["sites"]):
            row = [task["name"], site, task["trained"]["accuracy"][i], task["trained"]["fold_std"][i],
                   task["trained"]["control"][i], task["trained"]["selectivity"][i]]
            if "random" in models:
                row += [task["random"]["accuracy"][i], task["random"]["selectivity"][i]]
            accuracy_rows.append(row + [task["majority"]])
    random_header = ["random-weights accuracy", "random-weights selectivity"] if "random" in models else []
    accuracy_table = Table(["task", "site", "accuracy", "± fold std", "control accuracy", "selectivity",
                            *random_header, "majority class"], accuracy_rows)
    selectivity_table = Table(["site", *(task["name"] for task in summary["tasks"])],
                              [[site, *(task["trained"]["selectivity"][i] for task in summary["tasks"])]
                               for i, site in enumerate(summary["sites"])], caption="selectivity, trained weights")
    tasks_table = Table(["task", "unit", "examples", "classes", "held out", "units", "why", "best site"],
                        [[t["name"], t["unit"], t["examples"], len(t["classes"]), t["holds_out"] + "s", t["groups"], t["why"],
                          t["best_site"]] for t in summary["tasks"]], caption="tasks and their splits")
    blocks = [Text(_overview(summary, config)), tasks_table,
              Figure("accuracy.png", "Held-out probe accuracy per site for each task: trained and random-weights "
                     "Whisper, their control tasks, and the majority class", numbers=accuracy_table,
                     caption="Accuracy over all examples, each predicted by a probe trained without its fold; "
                             "error bars: standard deviation over folds."),
              Figure("selectivity.png", "Selectivity (accuracy minus control-task accuracy) per site for each task",
                     numbers=selectivity_table)]
    language = _task(summary, "language")
    if language is not None and "whisper_detect_language" in language:
        detected = language["whisper_detect_language"]
        blocks.append(Text(f"Whisper's own detect_language (30 s windows) on {detected['clips']} clips of the language "
                           f"task: {detected['accuracy_among_classes']:.1%} correct when its choice is restricted to "
                           f"{', '.join(language['classes'])}, {detected['accuracy_all_languages']:.1%} over all its "
                           f"languages; the probe at {language['best_site']}, on the same clips (each predicted by the "
                           f"probe trained without its utterance): {detected['probe_accuracy_same_clips']:.1%}."))
    if language is not None:
        recall = arrays["language/trained_recall"]
        blocks.append(Table(["site", *language["classes"]],
                            [[site, *(round(float(value), 3) for value in recall[i])] for i, site in enumerate(summary["sites"])],
                            caption="language probe, recall of each language per site (trained weights): "
                                    "the seeds' is_french is the fr column"))
    phone = _task(summary, "phone")
    if phone is not None:
        matrix = arrays["phone/confusion"]
        per_phone = Table(["phone", "recall", "most confused with"],
                          [[name, round(float(matrix[i, i]), 3), _most_confused(matrix[i], i, phone["classes"])]
                           for i, name in enumerate(phone["classes"])])
        blocks.append(Figure("phone_confusion.png", f"Phone confusion matrix at {phone['best_site']}", numbers=per_phone))
    return blocks


def _most_confused(row: np.ndarray, own: int, classes: list[str]) -> str:
    others = row.copy()
    others[own] = -1
    best = int(np.argmax(others))
    return f"{classes[best]} ({others[best]:.2f})" if others[best] > 0 else ""


def _overview(summary: dict, config) -> str:
    positions = ", ".join(map(str, summary["positions_per_clip"]))
    random_part = ("and on a Whisper of the same size with random weights (seed "
                   f"{config.seed}); " if "random" in summary["models"] else "")
    return (f"Linear probes (multinomial logistic regression, C = {config.regularization}, on standardised activations) "
            f"on {summary['model']} {random_part}{summary['clips']} clips, {positions} encoder positions each; "
            f"{summary['padded_clips']} clips shared a batch with a longer clip. Clip tasks mean-pool each clip's valid "
            f"positions; frame tasks use a seeded sample of at most {config.frames_per_class} frames per label "
            f"({summary['frames_sampled']} frames). Each of {config.folds} folds holds out whole voices or utterances. "
            "Control tasks (Hewitt & Liang) cluster the examples' log-mel by k-means "
            f"({config.control_clusters_per_class} clusters per class) and give each cluster a random label of the task's; "
            "selectivity is accuracy minus control accuracy. Sites: conv is the "
            "convolutions' output, embed adds the positional embedding (layer 0's input), layer N is block N's "
            "residual output.")
