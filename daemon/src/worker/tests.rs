//! The worker loop over the memory wire, with a stand-in app layer.
