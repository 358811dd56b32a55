# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The main job: simulated robot -> rosbag2 -> LeRobot dataset -> training -> bundle -> live node -> report.

    python -m ove_ros.main_job [--output outputs/demo] [--episodes 48] [--heldout 12] [--train-steps 800]
    python -m ove_ros.main_job real [--data ../shared/data/g1_pick_bottle_mini] [--output outputs/demo_real]

The one package that drives both sides: the runtime (``ove_ros.sim``, ``ove_ros.ros``, the engine) and the
training package (``ove_ros.training``). Nothing else in ``ove_ros`` imports training code, so the runtime
installs on a robot without it; ``test/test_import_layers.py`` holds that rule.

Sim mode runs every stage as the real system would, over ROS 2 between processes:

1. ``sim_robot`` (MetaWorld experts with injected mistakes) and ``bag_recorder`` -> one rosbag2 per episode
   (``record``);
2. ``ove_ros.training.bag_to_lerobot`` -> LeRobot v3 dataset with reward / is_done;
3. ``ove_ros.training.train`` with ``training/configs/demo.yaml`` (tiny model, CPU) (``train_stage``);
4. ``ove_ros.training.convert`` -> deploy bundle;
5. ``value_estimator`` on the running simulator for held-out seeds, recorded with its ~/value, ~/advantage
   and ~/overlay outputs;
6. the report (``report``, ``media``): the same bundle run offline on the recorded frames (``episode_bags``;
   online-vs-offline agreement), EV and mid-episode failure AUROC, value-curve plots, the overlay video and a
   PNG strip;
7. parity through the dataset path (``parity``): the held-out bags converted and labelled by the training
   code, compared frame by frame with the node's live values and advantages, and with a second node fed the
   same bags faster than it can value them (skipped frames must be gaps, not shifts).

Bags, dataset and training run are cached under ``cache_dir`` keyed by a hash of what produced them, so a
re-run only repeats the live stage and the report (``sim_mode``). Real mode (``real_mode``) trains and
evaluates the same model on the real G1 episodes (all successes: the value is task progress), from a
training-resolution copy of the dataset (``reencode``, ``video``), and reports EV on held-out episodes.
"""
