"""The options every SmolLM2 benchmark takes: the program, the model, the calibration text and
the folder of held-out texts, with the repository's defaults."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def add_smollm2_arguments(parser):
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "launch", "skim-dist"))
    parser.add_argument("--model",
                        default=os.path.join(ROOT, "data", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--calib", default=os.path.join(ROOT, "data", "text", "emma.txt"))
    parser.add_argument("--text-dir", default=os.path.join(ROOT, "data", "text"))
