#[promiscuous::ephemeral(page, to = "crowdtap/page_view", id = "uuid", extends = "Event, PageView")]
pub struct PageView {
    pub uuid: String,
    pub page: String,
    pub user_id: i32,
}

fn main() {}
