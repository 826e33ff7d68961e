"""crowdsft: open, crowd-sourced supervised fine-tuning with Shapley-fair points."""

__version__ = "0.1.0"
