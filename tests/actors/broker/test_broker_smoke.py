from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand


async def test_starts_registers_and_answers_heartbeat(broker_handle, client, namesrv_addr):
    reply = await client.invoke(
        namesrv_addr,
        RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "TBW102"}),
        3,
    )
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    assert broker_handle.address.encode() in reply.body
