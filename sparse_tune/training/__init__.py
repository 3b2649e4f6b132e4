"""Training: datasets of query groups, the collator, the Trainer subclass, and the run wiring."""
