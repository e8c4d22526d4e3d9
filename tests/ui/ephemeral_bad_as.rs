#[promiscuous::ephemeral(page, to = "crowdtap/page_view", id = "uuid", as = "Page View")]
pub struct PageView {
    pub uuid: String,
    pub page: String,
    pub user_id: i32,
}

fn main() {}
