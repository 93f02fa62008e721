//! Fakes of the services people pull their data from (being written).
