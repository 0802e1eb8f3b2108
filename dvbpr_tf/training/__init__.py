"""Training: trainer (the one loop: checkpoints, summaries, progress) and the tasks that say
what a step is: bpr_task (DVBPR and the pairwise baselines), dvbpr_task, pairwise_task,
gan_task; preemption (SIGTERM / SIGINT: finish the call, checkpoint, stop). May import: core, config, data, models, baselines, evaluation."""
