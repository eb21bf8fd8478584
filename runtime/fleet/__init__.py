"""Fleet updates: a TUF repository on the cloud side, a sync agent on the box.

Cloud side: ``keys`` (role keys), ``publish`` (packages -> signed targets), ``bundle``
(offline export/import). Box side: ``tufclient`` (verified metadata), ``releases`` (what
the signed metadata offers this node), ``download`` (resumable, capped), ``install``
(content-addressed blobs, staging, atomic pointer, rollback), ``trial`` (golden-set
gate), ``state`` (persisted stages), ``agent`` (the loop that ties them together).
Knowledge packs travel the same way: ``pack_publish`` (cloud side), ``pack_sync`` and
``pack_host`` (box side), ``status`` (what both report).
See docs/fleet.md for the trust model.
"""
