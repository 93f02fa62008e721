//! Local fakes of Exist and of the services `exist-agent` pulls from, each written from that
//! service's public documentation (shapes, parameters, paging, auth), never from the agent's own
//! code: a fake that shares the agent's rules would agree with the agent when both are wrong.
