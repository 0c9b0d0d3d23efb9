"""The relay between hosts and SMSCs: admission, the per-link queue, intake, dispatch, dialogs."""
