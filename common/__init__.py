"""United SSL bundles: shared components for stepwise incremental self-supervised pretraining."""
