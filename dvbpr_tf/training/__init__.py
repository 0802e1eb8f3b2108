"""Training: trainer (the one loop: checkpoints, summaries, progress) and the tasks that say
what a step is: bpr_task (DVBPR and the pairwise baselines), dvbpr_task, pairwise_task,
gan_task; lazy_adam (Adam on the rows a batch read: FM's and VBPR's tables at catalog
scale); preemption (SIGTERM / SIGINT: finish the call, checkpoint, stop). May import: core,
config, data, models, baselines, evaluation."""
